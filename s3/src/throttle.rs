//! Upload pacing for `--bwlimit`: request bodies are sent in 64 KiB slices,
//! each released by the shared [`RateLimiter`], so no second carries more
//! than the rate plus one slice, whatever the object size.
//!
//! It is an operation interceptor on the transmit hook, added last (through
//! `customize()`), after signing and after the SDK's own aws-chunked
//! interceptor, which must still see the in-memory body; the signed bytes
//! are unchanged, and `SdkBody::map` re-applies it when the SDK rebuilds the
//! body for a retry.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use aws_sdk_s3::config::{Intercept, RuntimeComponents};
use aws_sdk_s3::primitives::SdkBody;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_types::config_bag::ConfigBag;
use bytes::Bytes;
use cadang_core::ratelimit::RateLimiter;
use http_body::{Body, Frame, SizeHint};

const SLICE: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) struct PaceUploads(pub(crate) Arc<RateLimiter>);

/// Adds the pacing interceptor to one upload when a limiter is set.
pub(crate) fn paced<T, E, B>(
    op: aws_sdk_s3::client::customize::CustomizableOperation<T, E, B>,
    pace: &Option<Arc<RateLimiter>>,
) -> aws_sdk_s3::client::customize::CustomizableOperation<T, E, B> {
    match pace {
        Some(l) => op.interceptor(PaceUploads(l.clone())),
        None => op,
    }
}

impl Intercept for PaceUploads {
    fn name(&self) -> &'static str {
        "cadang-pace-uploads"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = std::mem::replace(context.request_mut().body_mut(), SdkBody::taken());
        let limiter = self.0.clone();
        *context.request_mut().body_mut() = body.map(move |inner| {
            SdkBody::from_body_1_x(Paced {
                inner,
                limiter: limiter.clone(),
                pending: Bytes::new(),
                ready: None,
                wait: None,
            })
        });
        Ok(())
    }
}

struct Paced {
    inner: SdkBody,
    limiter: Arc<RateLimiter>,
    /// Bytes of the inner body's current frame not yet released.
    pending: Bytes,
    /// The slice waiting for its turn.
    ready: Option<Bytes>,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for Paced {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if let Some(wait) = self.wait.as_mut() {
                if wait.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.wait = None;
                let slice = self.ready.take().expect("a slice waits with its timer");
                return Poll::Ready(Some(Ok(Frame::data(slice))));
            }
            if !self.pending.is_empty() {
                let n = self.pending.len().min(SLICE);
                let slice = self.pending.split_to(n);
                let at = self.limiter.reserve(n as u64);
                self.ready = Some(slice);
                self.wait = Some(Box::pin(tokio::time::sleep_until(at)));
                continue;
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => self.pending = data,
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.ready.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = Body::size_hint(&self.inner);
        let held = (self.pending.len() + self.ready.as_ref().map_or(0, Bytes::len)) as u64;
        hint.set_lower(hint.lower() + held);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 MiB through a 256 KiB/s limiter (paused clock): 64 KiB slices, four
    /// seconds, and no one-second window above the rate plus one slice.
    #[tokio::test(start_paused = true)]
    async fn uploads_go_out_in_paced_slices() {
        let rate = 256 * 1024u64;
        let data: Vec<u8> = (0..1024 * 1024u32).map(|i| i as u8).collect();
        let mut body = Paced {
            inner: SdkBody::from(data.clone()),
            limiter: Arc::new(RateLimiter::new(rate)),
            pending: Bytes::new(),
            ready: None,
            wait: None,
        };
        let t0 = tokio::time::Instant::now();
        let mut got = Vec::new();
        let mut sent: Vec<(f64, usize)> = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            let data = frame.unwrap().into_data().unwrap();
            assert!(data.len() <= SLICE);
            sent.push((t0.elapsed().as_secs_f64(), data.len()));
            got.extend_from_slice(&data);
        }
        assert_eq!(got, data);
        let last = sent.last().unwrap().0;
        assert!((3.7..=4.0).contains(&last), "last slice at {last} s");
        for (i, (t, _)) in sent.iter().enumerate() {
            let in_window: usize = sent[i..]
                .iter()
                .take_while(|(u, _)| *u < t + 1.0)
                .map(|(_, n)| n)
                .sum();
            assert!(
                in_window as u64 <= rate + SLICE as u64,
                "{in_window} bytes in the second from {t}"
            );
        }
    }
}
