//! Multipart upload for objects above the single-PUT limit.
//!
//! The object only appears when CompleteMultipartUpload succeeds, so a failed
//! or interrupted upload never leaves a partial object behind; its parts are
//! invisible to listings. They still cost storage, so a failed upload is
//! aborted, and a dropped one (the caller gave up) is aborted in the
//! background. A bucket lifecycle rule `AbortIncompleteMultipartUpload`
//! catches the rest (a killed process).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::Bytes;
use tokio::task::JoinSet;

use crate::backend::S3Backend;
use crate::errors::Failure;
use crate::requests::Written;

/// Size of one part (S3 wants at least 5 MiB except for the last one).
pub const PART_SIZE: usize = 8 << 20;
/// Parts sent at once. They are slices of the caller's buffer, so this costs
/// connections, not memory.
const PARTS_IN_FLIGHT: usize = 4;
/// S3's limit on the number of parts.
const MAX_PARTS: usize = 10_000;

/// Aborts the upload when dropped before `disarm`.
struct AbortOnDrop {
    client: Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
}

impl AbortOnDrop {
    async fn abort_now(mut self) {
        if let Some(id) = self.upload_id.take() {
            abort(&self.client, &self.bucket, &self.key, &id).await;
        }
    }

    fn disarm(mut self) {
        self.upload_id = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.upload_id.take() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
        rt.spawn(async move { abort(&client, &bucket, &key, &id).await });
    }
}

async fn abort(client: &Client, bucket: &str, key: &str, upload_id: &str) {
    let res = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await;
    if let Err(e) = res {
        tracing::warn!(
            key,
            upload_id,
            error = %aws_sdk_s3::error::DisplayErrorContext(&e),
            "could not abort a failed multipart upload; its parts stay invisible until a bucket \
             lifecycle rule (AbortIncompleteMultipartUpload) removes them"
        );
    }
}

/// The part size for `len` bytes: [`PART_SIZE`], or more if that would
/// exceed S3's part count.
pub fn part_size(len: usize) -> usize {
    PART_SIZE.max(len.div_ceil(MAX_PARTS))
}

pub(crate) async fn upload(
    b: &S3Backend,
    key: &str,
    data: Bytes,
    create_only: bool,
) -> Result<Written, Failure> {
    let created = b
        .client
        .create_multipart_upload()
        .bucket(b.bucket())
        .key(key)
        .content_type("application/octet-stream")
        .send()
        .await
        .map_err(Failure::from_sdk)?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| Failure::local("CreateMultipartUpload answered without an upload id"))?
        .to_string();
    let guard = AbortOnDrop {
        client: b.client.clone(),
        bucket: b.bucket().to_string(),
        key: key.to_string(),
        upload_id: Some(upload_id.clone()),
    };
    match send_parts_and_complete(b, key, &upload_id, data, create_only).await {
        Ok(written) => {
            guard.disarm();
            Ok(written)
        }
        Err(f) => {
            guard.abort_now().await;
            Err(f)
        }
    }
}

async fn send_parts_and_complete(
    b: &S3Backend,
    key: &str,
    upload_id: &str,
    data: Bytes,
    create_only: bool,
) -> Result<Written, Failure> {
    let size = part_size(data.len());
    let mut tasks = JoinSet::new();
    let mut parts = Vec::new();
    for (i, start) in (0..data.len()).step_by(size).enumerate() {
        let number = i32::try_from(i + 1).map_err(|_| Failure::local("too many parts"))?;
        let body = data.slice(start..(start + size).min(data.len()));
        let req = b
            .client
            .upload_part()
            .bucket(b.bucket())
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body));
        let req = crate::throttle::paced(req.customize().disable_payload_signing(), &b.pace);
        tasks.spawn(async move { req.send().await.map(|out| (number, out)) });
        if tasks.len() >= PARTS_IN_FLIGHT {
            parts.push(next_part(&mut tasks).await?);
        }
    }
    while !tasks.is_empty() {
        parts.push(next_part(&mut tasks).await?);
    }
    parts.sort_by_key(|p| p.part_number());
    let mut req = b
        .client
        .complete_multipart_upload()
        .bucket(b.bucket())
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        );
    if create_only {
        req = req.if_none_match("*");
    }
    let out = req.send().await.map_err(Failure::from_sdk)?;
    Ok(Written::new(out.version_id(), out.e_tag()))
}

type PartResult = Result<
    (i32, aws_sdk_s3::operation::upload_part::UploadPartOutput),
    aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::upload_part::UploadPartError>,
>;

/// Waits for one part; its ETag (and checksum, when the SDK sent one) go
/// into the completion request.
async fn next_part(tasks: &mut JoinSet<PartResult>) -> Result<CompletedPart, Failure> {
    let joined = tasks.join_next().await.expect("called with tasks pending");
    let (number, out) = joined
        .map_err(|e| Failure::local(format!("a part upload task failed: {e}")))?
        .map_err(Failure::from_sdk)?;
    let e_tag = out
        .e_tag()
        .ok_or_else(|| Failure::local(format!("UploadPart {number} answered without an ETag")))?;
    Ok(CompletedPart::builder()
        .part_number(number)
        .e_tag(e_tag)
        .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
        .set_checksum_crc32_c(out.checksum_crc32_c().map(str::to_string))
        .set_checksum_crc64_nvme(out.checksum_crc64_nvme().map(str::to_string))
        .set_checksum_sha1(out.checksum_sha1().map(str::to_string))
        .set_checksum_sha256(out.checksum_sha256().map(str::to_string))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_respects_the_part_count_limit() {
        assert_eq!(part_size(40 << 20), PART_SIZE);
        assert_eq!(part_size(PART_SIZE * MAX_PARTS), PART_SIZE);
        let big = PART_SIZE * MAX_PARTS + 1;
        assert!(big.div_ceil(part_size(big)) <= MAX_PARTS);
    }
}
