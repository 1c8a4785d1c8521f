//! The canonical JSON a signature covers: object keys sorted by their
//! UTF-8 bytes, no whitespace, strings and numbers exactly as serde_json
//! writes them. The same value always gives the same bytes, whatever
//! order or spacing a file had, so a verifier re-derives them from a
//! parsed document. Bodies hold no floating-point numbers (times are
//! RFC 3339 strings, durations integer seconds), so a parse and re-write
//! never changes a number.

use serde_json::Value;

/// The canonical bytes of `value`.
pub fn to_canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(b':');
                write(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Writing a scalar into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sorted_no_whitespace() {
        let v: Value =
            serde_json::from_str(r#"{ "b": [1, {"z": null, "a": "x\"y"}], "a": true }"#).unwrap();
        assert_eq!(
            String::from_utf8(to_canonical(&v)).unwrap(),
            r#"{"a":true,"b":[1,{"a":"x\"y","z":null}]}"#
        );
    }
}
