//! Parsing of `s3://BUCKET/PREFIX?endpoint=..&region=..` repository URLs.
//!
//! The URL ends up in shell history, process lists, cron files and log lines,
//! so it must never carry credentials: anything that looks like a key, secret
//! or token is refused with a message that says where credentials go instead.

use std::fmt;

/// Where a repository lives and how to talk to the server. Holds no secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    /// Key prefix without leading or trailing slash; empty for the bucket root.
    pub prefix: String,
    /// `https://host:port` of an S3-compatible server; `None` means AWS.
    pub endpoint: Option<String>,
    /// The region given in the URL, if any (the environment is consulted later).
    pub region: Option<String>,
    /// `checksums=when-required`: only send and check checksums that the
    /// operation requires (Ceph RGW 18, MinIO before 2024).
    pub checksums_when_required: bool,
    /// Path-style (`host/bucket/key`) instead of virtual-hosted
    /// (`bucket.host/key`) addressing.
    pub path_style: bool,
    path_style_given: bool,
}

/// Why a repository URL was refused; the message says how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlError(pub String);

const CREDENTIAL_HINT: &str = "credentials must not be part of the repository URL (it shows up in \
    process lists, shell history and logs): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
    (and AWS_SESSION_TOKEN if needed) in the environment, or put them in the credentials file \
    (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, profile chosen with AWS_PROFILE)";

const KNOWN: &str = "endpoint, region, checksums, path-style";

fn err(msg: impl Into<String>) -> UrlError {
    UrlError(msg.into())
}

/// True for parameter names that would carry a secret (`access_key`,
/// `secretKey`, `session-token`, `password`, ...).
fn looks_like_credential(name: &str) -> bool {
    let n: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    [
        "key",
        "secret",
        "token",
        "password",
        "passwd",
        "credential",
        "signature",
    ]
    .iter()
    .any(|w| n.contains(w))
}

fn percent_decode(s: &str) -> Result<String, UrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| err(format!("bad percent-encoding in {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| err(format!("{s:?} is not UTF-8 once decoded")))
}

fn parse_bool(name: &str, v: &str) -> Result<bool, UrlError> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(err(format!("{name} must be true or false, not {v:?}"))),
    }
}

fn check_endpoint(e: &str) -> Result<String, UrlError> {
    let rest = e
        .strip_prefix("https://")
        .or_else(|| e.strip_prefix("http://"))
        .ok_or_else(|| {
            err(format!(
                "endpoint {e:?} must start with https:// (or http://), e.g. endpoint=https://minio.example:9000"
            ))
        })?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(err(format!(
            "the endpoint must not contain a user name or password; {CREDENTIAL_HINT}"
        )));
    }
    if authority.is_empty() || rest.contains('?') || rest.contains('#') {
        return Err(err(format!(
            "endpoint {e:?} must be a plain https://host:port URL"
        )));
    }
    Ok(e.trim_end_matches('/').to_string())
}

fn check_bucket(b: &str) -> Result<(), UrlError> {
    let ok = (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
        && !b.starts_with(['-', '.'])
        && !b.ends_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(err(format!(
            "{b:?} is not a valid bucket name (3 to 63 letters, digits, '-' or '.'); the URL form is s3://BUCKET/PREFIX"
        )))
    }
}

fn check_prefix(p: &str) -> Result<String, UrlError> {
    let p = p.trim_matches('/');
    if p.is_empty() {
        return Ok(String::new());
    }
    for seg in p.split('/') {
        let ok = !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|c| c.is_ascii_graphic() && !matches!(c, b'\\' | b'%'));
        if !ok {
            return Err(err(format!(
                "the prefix {p:?} must be plain path segments separated by single '/' (no empty, '.' or '..' segments, no spaces)"
            )));
        }
    }
    Ok(p.to_string())
}

impl S3Url {
    /// Parses `s3://BUCKET[/PREFIX][?endpoint=URL&region=R&checksums=when-required&path-style=BOOL]`.
    pub fn parse(url: &str) -> Result<S3Url, UrlError> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            err("an S3 repository URL starts with s3://, e.g. s3://backups/cadang")
        })?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.contains('@') {
            return Err(err(CREDENTIAL_HINT));
        }
        check_bucket(bucket)?;
        let mut parsed = S3Url {
            bucket: bucket.to_string(),
            prefix: check_prefix(prefix)?,
            endpoint: None,
            region: None,
            checksums_when_required: false,
            path_style: false,
            path_style_given: false,
        };
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name)?;
            if looks_like_credential(&name) {
                return Err(err(format!(
                    "refusing the URL parameter {name:?}: {CREDENTIAL_HINT}"
                )));
            }
            let value = percent_decode(value)?;
            match name.as_str() {
                "endpoint" => parsed.endpoint = Some(check_endpoint(&value)?),
                "region" => {
                    if value.is_empty() || !value.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
                        return Err(err(format!("region {value:?} is not a region name like us-east-1")));
                    }
                    parsed.region = Some(value);
                }
                "checksums" => {
                    parsed.checksums_when_required = match value.as_str() {
                        "when-required" => true,
                        "when-supported" => false,
                        _ => {
                            return Err(err(format!(
                                "checksums must be when-required (for Ceph RGW 18 and older MinIO) or when-supported, not {value:?}"
                            )))
                        }
                    }
                }
                "path-style" => {
                    parsed.path_style = parse_bool("path-style", &value)?;
                    parsed.path_style_given = true;
                }
                other => {
                    return Err(err(format!("unknown URL parameter {other:?}; known are {KNOWN}")))
                }
            }
        }
        if !parsed.path_style_given {
            // MinIO and Ceph RGW are usually reached by IP or a single host
            // name without wildcard DNS; AWS wants virtual-hosted style.
            parsed.path_style = parsed.endpoint.is_some();
        }
        Ok(parsed)
    }

    /// The key of `rel` (e.g. `packs/ab/abcd`) inside the bucket.
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    /// Best-effort location for messages when the URL itself is invalid:
    /// scheme, bucket and prefix only, so a refused secret is never echoed.
    pub fn redacted(url: &str) -> String {
        let path = url.split('?').next().unwrap_or_default();
        match path.strip_prefix("s3://") {
            Some(rest) => match rest.rsplit_once('@') {
                Some((_, host)) => format!("s3://{host}"),
                None => path.to_string(),
            },
            None => path.to_string(),
        }
    }
}

impl fmt::Display for S3Url {
    /// The canonical URL (it holds no secret, so it is safe for messages).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        let mut params = Vec::new();
        if let Some(e) = &self.endpoint {
            params.push(format!("endpoint={e}"));
        }
        if let Some(r) = &self.region {
            params.push(format!("region={r}"));
        }
        if self.checksums_when_required {
            params.push("checksums=when-required".into());
        }
        if self.path_style_given {
            params.push(format!("path-style={}", self.path_style));
        }
        if !params.is_empty() {
            write!(f, "?{}", params.join("&"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_and_prefix_with_or_without_slashes() {
        for u in ["s3://bkt/a/b", "s3://bkt/a/b/", "s3://bkt//a/b//"] {
            let p = S3Url::parse(u).unwrap();
            assert_eq!(
                (p.bucket.as_str(), p.prefix.as_str()),
                ("bkt", "a/b"),
                "{u}"
            );
            assert_eq!(p.key("config"), "a/b/config");
        }
        for u in ["s3://bkt", "s3://bkt/"] {
            let p = S3Url::parse(u).unwrap();
            assert_eq!(p.prefix, "");
            assert_eq!(p.key("packs/ab/abcd"), "packs/ab/abcd");
        }
        assert!(S3Url::parse("s3://bkt/a//b").is_err());
        assert!(S3Url::parse("s3://bkt/a/../b").is_err());
        assert!(
            S3Url::parse("s3://b").is_err(),
            "bucket names have at least 3 characters"
        );
        assert!(S3Url::parse("/srv/backup").is_err());
    }

    #[test]
    fn query_parameters() {
        let p = S3Url::parse(
            "s3://bkt/repo?endpoint=https%3A%2F%2Frgw.dc.local%3A7480/&region=id-jkt-1&checksums=when-required",
        )
        .unwrap();
        assert_eq!(p.endpoint.as_deref(), Some("https://rgw.dc.local:7480"));
        assert_eq!(p.region.as_deref(), Some("id-jkt-1"));
        assert!(p.checksums_when_required);
        assert!(p.path_style, "an explicit endpoint defaults to path-style");
        assert_eq!(
            p.to_string(),
            "s3://bkt/repo?endpoint=https://rgw.dc.local:7480&region=id-jkt-1&checksums=when-required"
        );

        let aws = S3Url::parse("s3://bkt/repo").unwrap();
        assert!(!aws.path_style && aws.endpoint.is_none() && aws.region.is_none());
        assert!(!aws.checksums_when_required);
        let forced =
            S3Url::parse("s3://bkt?endpoint=http://127.0.0.1:9000&path-style=false").unwrap();
        assert!(!forced.path_style);
        assert!(S3Url::parse("s3://bkt?path-style=true").unwrap().path_style);

        let unknown = S3Url::parse("s3://bkt?endpont=https://x").unwrap_err();
        assert!(
            unknown.0.contains("endpont") && unknown.0.contains("endpoint"),
            "{unknown}"
        );
        assert!(S3Url::parse("s3://bkt?endpoint=minio:9000")
            .unwrap_err()
            .0
            .contains("https://"));
        assert!(S3Url::parse("s3://bkt?checksums=sometimes").is_err());
        assert!(S3Url::parse("s3://bkt?path-style=maybe").is_err());
    }

    #[test]
    fn credentials_in_the_url_are_refused() {
        for u in [
            "s3://bkt/r?access_key=AKIA123&secret_key=abc",
            "s3://bkt/r?aws_secret_access_key=abc",
            "s3://bkt/r?endpoint=https://h&accessKeyId=AKIA",
            "s3://bkt/r?session-token=t",
            "s3://bkt/r?password=p",
            "s3://AKIA:secret@bkt/r",
            "s3://bkt/r?endpoint=https://AKIA:secret@minio:9000",
        ] {
            let e = S3Url::parse(u).unwrap_err();
            assert!(e.0.contains("AWS_ACCESS_KEY_ID"), "{u}: {e}");
            assert!(
                !e.0.contains("secret@") && !e.0.contains("abc"),
                "{u} leaked into {e}"
            );
        }
        assert_eq!(S3Url::redacted("s3://AKIA:secret@bkt/r?x=y"), "s3://bkt/r");
        assert_eq!(S3Url::redacted("s3://bkt/r?secret_key=abc"), "s3://bkt/r");
    }
}
