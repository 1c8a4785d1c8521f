//! Mapping of S3 error codes to messages, without a server.

use super::*;
use aws_sdk_s3::error::ErrorMetadata;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::SdkBody;

fn target(checksums_when_required: bool) -> Target {
    Target {
        location: "s3://bkt/repo?endpoint=https://rgw:7480".into(),
        bucket: "bkt".into(),
        endpoint: "https://rgw:7480".into(),
        checksums_when_required,
    }
}

fn service(status: u16, code: &str, header: Option<(&str, &str)>) -> Failure {
    let mut resp = http::Response::builder().status(status);
    if let Some((k, v)) = header {
        resp = resp.header(k, v);
    }
    let raw = HttpResponse::try_from(resp.body(SdkBody::empty()).unwrap()).unwrap();
    let mut meta = ErrorMetadata::builder().message("server text");
    if !code.is_empty() {
        meta = meta.code(code);
    }
    Failure::from_sdk(SdkError::service_error(
        GetObjectError::generic(meta.build()),
        raw,
    ))
}

fn message(f: Failure, when_required: bool) -> (BackendError, String) {
    let e = f.into_error(&target(when_required), "read", "index/00".into());
    let m = e.to_string();
    (e, m)
}

#[test]
fn clock_skew_says_fix_ntp() {
    let (e, m) = message(service(403, "RequestTimeTooSkewed", None), false);
    assert!(matches!(e, BackendError::Unavailable { .. }), "{e:?}");
    assert!(m.contains("clock") && m.contains("NTP"), "{m}");
}

#[test]
fn refused_credentials_and_denied_access_are_permission_errors() {
    for code in ["InvalidAccessKeyId", "SignatureDoesNotMatch"] {
        let (e, m) = message(service(403, code, None), false);
        assert!(
            matches!(e, BackendError::PermissionDenied { op: "read", .. }),
            "{e:?}"
        );
        assert!(
            m.contains("credentials were refused") && m.contains("AWS_ACCESS_KEY_ID"),
            "{m}"
        );
    }
    let (e, m) = message(service(403, "AccessDenied", None), false);
    assert!(matches!(e, BackendError::PermissionDenied { .. }), "{e:?}");
    assert!(m.contains("s3:PutObject") && m.contains("\"bkt\""), "{m}");
}

#[test]
fn checksum_rejections_suggest_when_required_once() {
    let (_, m) = message(service(400, "XAmzContentSHA256Mismatch", None), false);
    assert!(m.contains("checksums=when-required"), "{m}");
    let (_, m) = message(service(400, "XAmzContentSHA256Mismatch", None), true);
    assert!(!m.contains("add checksums=when-required"), "{m}");
}

#[test]
fn wrong_region_names_the_right_one() {
    let f = service(
        301,
        "PermanentRedirect",
        Some(("x-amz-bucket-region", "ap-southeast-3")),
    );
    let (e, m) = message(f, false);
    assert!(matches!(e, BackendError::Unavailable { .. }), "{e:?}");
    assert!(m.contains("region=ap-southeast-3"), "{m}");
}

#[test]
fn quota_is_no_space_and_outages_are_unavailable() {
    let (e, _) = message(service(403, "QuotaExceeded", None), false);
    assert!(matches!(e, BackendError::NoSpace { .. }), "{e:?}");
    let (e, m) = message(service(503, "SlowDown", None), false);
    assert!(matches!(e, BackendError::Unavailable { .. }), "{e:?}");
    assert!(m.contains("https://rgw:7480"), "{m}");
}

#[test]
fn classification() {
    assert!(service(404, "NoSuchKey", None).is_not_found());
    assert!(service(404, "NotFound", None).is_not_found());
    assert!(!service(404, "NoSuchBucket", None).is_not_found());
    assert!(service(412, "PreconditionFailed", None).is_precondition_failed());
    assert!(service(409, "ConditionalRequestConflict", None).is_precondition_failed());
    assert!(service(416, "InvalidRange", None).is_invalid_range());
    assert!(service(501, "NotImplemented", None).is_not_implemented());
    assert!(!Failure::local("x").is_not_found());
}
