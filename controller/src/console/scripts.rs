//! The console's two scripts, compiled into the binary: `age.js` (the npm
//! age-encryption package, built by `controller/assets/js/build.sh`) and
//! `approve.js` (the browser-side approval). Nothing is fetched from
//! anywhere else at run time.
//!
//! `age.js` is 110 KB; it goes out gzip-compressed (40 KB, compressed at
//! build time) to every browser that says it accepts gzip, so the approval
//! page stays under 100 KB on a slow link.

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

pub const AGE_PATH: &str = "/console/assets/js/age.js";
pub const APPROVE_PATH: &str = "/console/assets/js/approve.js";

const AGE_JS: &[u8] = include_bytes!("../../assets/js/age.js");
const AGE_JS_GZ: &[u8] = include_bytes!("../../assets/js/age.js.gz");
const APPROVE_JS: &[u8] = include_bytes!("../../assets/js/approve.js");

/// The script routes (public: they hold code, nothing secret).
pub fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    use axum::routing::get;
    axum::Router::new()
        .route(AGE_PATH, get(age))
        .route(APPROVE_PATH, get(approve))
}

#[utoipa::path(get, path = "/console/assets/js/age.js", tag = "console", responses((status = 200, description = "The age-encryption package (gzip when accepted)", content_type = "text/javascript", body = String)))]
pub async fn age(headers: HeaderMap) -> Response {
    if accepts_gzip(&headers) {
        script(AGE_JS_GZ, Some("gzip"))
    } else {
        script(AGE_JS, None)
    }
}

#[utoipa::path(get, path = "/console/assets/js/approve.js", tag = "console", responses((status = 200, description = "The browser-side approval script", content_type = "text/javascript", body = String)))]
pub async fn approve() -> Response {
    script(APPROVE_JS, None)
}

fn script(body: &'static [u8], encoding: Option<&'static str>) -> Response {
    let mut resp = (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            // Revalidated on every load: after an upgrade the browser must
            // not keep running an old approval script.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(e) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    resp
}

/// Whether `Accept-Encoding` lists gzip without `q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| p.replace(' ', "") == "q=0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::ACCEPT_ENCODING, v.parse().unwrap());
        m
    }

    #[test]
    fn gzip_only_when_accepted() {
        assert!(accepts_gzip(&h("gzip, deflate, br, zstd")));
        assert!(accepts_gzip(&h("br;q=1.0, gzip;q=0.8")));
        assert!(!accepts_gzip(&h("gzip;q=0, br")));
        assert!(!accepts_gzip(&h("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn the_gzip_copy_is_the_same_script() {
        // gzip magic, and the size field (last 4 bytes, little endian) is the
        // plain script's length: build.sh made one from the other.
        assert_eq!(&AGE_JS_GZ[..2], &[0x1f, 0x8b]);
        let n = AGE_JS_GZ.len();
        let size = u32::from_le_bytes(AGE_JS_GZ[n - 4..].try_into().unwrap());
        assert_eq!(
            size as usize,
            AGE_JS.len(),
            "rerun controller/assets/js/build.sh"
        );
        assert!(
            AGE_JS_GZ.len() < 60 * 1024,
            "age.js on the wire must stay small"
        );
    }
}
