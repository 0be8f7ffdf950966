//! Reads and listings that outlast transient storage faults.
//!
//! Object stores answer a share of requests with errors that go away when asked again: a
//! 5xx, a connection reset, a response body cut mid-stream, a request that never answers.
//! The S3 client retries some of these itself, but not a listing whose body is cut, nor a
//! request that hangs below its own timeout. [`RetryingStore`] wraps any [`ObjectStore`] and
//! retries reads (GET, HEAD, ranges) and listings with jittered exponential backoff, giving
//! every attempt a time limit, within a bounded number of attempts:
//!
//! ```text
//!  request ──► answer within attempt_timeout? ── no ──┐
//!     │ yes                                           │
//!     ▼                                               ▼
//!  error? ── transient (5xx, reset, cut body) ──► sleep uniform(0, min(max_delay,
//!     │ no / permanent (not found, denied, …)         base_delay·2^(n-1))), ask again,
//!     ▼                                               at most max_attempts in all
//!  answer
//! ```
//!
//! A body cut mid-stream is resumed from the first byte not yet delivered (pinned to the
//! object's entity tag when the store has one), and a listing cut mid-way is listed again
//! with the entries already delivered skipped, so callers see each byte and each entry
//! once. Writes are passed through unchanged: whether a write may be repeated depends on
//! the write (the run journal settles ambiguous creates itself).

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// How reads and listings are retried.
///
/// An operation makes at most `max_attempts` requests; each waits at most
/// `attempt_timeout` for an answer (for a streamed body or listing: for its next chunk or
/// entry). So one read or listing fails, at the latest, after about
/// `max_attempts · (attempt_timeout + max_delay)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRetry {
    /// Requests per operation, the first included (1 disables retries).
    pub max_attempts: u32,
    /// Backoff before the first retry; doubled for each further retry.
    pub base_delay: Duration,
    /// Longest backoff.
    pub max_delay: Duration,
    /// Longest wait for an answer (or for the next chunk of a body or listing).
    pub attempt_timeout: Duration,
}

impl Default for ReadRetry {
    /// 5 attempts, backoff from 100 ms up to 5 s, 30 s per attempt: at most about three
    /// minutes for one operation that keeps failing.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

impl ReadRetry {
    /// Sets the number of requests per operation (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the backoff before the first retry.
    pub fn with_base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// Sets the longest backoff.
    pub fn with_max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets the longest wait for one answer.
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// The backoff before retry number `retry` (1 for the first): a uniform draw from
    /// `0..=min(max_delay, base_delay · 2^(retry-1))`.
    fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)));
        exp.min(self.max_delay).mul_f64(rand::random::<f64>())
    }
}

/// Whether asking again may give another answer. Errors that describe the object or the
/// request (not found, exists, precondition, permission, bad path, unsupported) are final;
/// `Generic` is what HTTP failures, resets, cut bodies and timeouts become.
fn is_transient(error: &object_store::Error) -> bool {
    matches!(
        error,
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
    )
}

fn timed_out(after: Duration) -> object_store::Error {
    object_store::Error::Generic {
        store: "storage",
        source: format!("no answer within {after:?}").into(),
    }
}

/// Counts the attempts of one operation and decides whether another is allowed.
#[derive(Debug, Clone, Copy)]
struct Attempts {
    policy: ReadRetry,
    made: u32,
}

impl Attempts {
    fn new(policy: ReadRetry) -> Self {
        Self { policy, made: 1 }
    }

    /// After a failure: sleep and return true if another attempt is allowed.
    async fn retry_after(&mut self, what: &str, error: &object_store::Error) -> bool {
        if !is_transient(error) || self.made >= self.policy.max_attempts {
            return false;
        }
        let delay = self.policy.delay(self.made);
        tracing::warn!(
            operation = what,
            attempt = self.made,
            error = %error,
            retry_in_ms = delay.as_millis() as u64,
            "transient storage error; asking again"
        );
        self.made += 1;
        tokio::time::sleep(delay).await;
        true
    }
}

/// An [`ObjectStore`] that retries reads and listings (see the module docs).
#[derive(Debug, Clone)]
pub struct RetryingStore {
    inner: Arc<dyn ObjectStore>,
    policy: ReadRetry,
}

impl RetryingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>, policy: ReadRetry) -> Self {
        Self { inner, policy }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    async fn get_with_retries(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<(GetResult, Attempts)> {
        let mut attempts = Attempts::new(self.policy);
        loop {
            let error = match tokio::time::timeout(
                self.policy.attempt_timeout,
                self.inner.get_opts(location, options.clone()),
            )
            .await
            {
                Ok(Ok(result)) => return Ok((result, attempts)),
                Ok(Err(e)) => e,
                Err(_) => timed_out(self.policy.attempt_timeout),
            };
            if !attempts.retry_after("get", &error).await {
                return Err(error);
            }
        }
    }
}

impl fmt::Display for RetryingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

#[async_trait]
impl ObjectStore for RetryingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let (result, attempts) = self.get_with_retries(location, options.clone()).await?;
        if options.head {
            return Ok(result);
        }
        let GetResultPayload::Stream(body) = result.payload else {
            // A local file handle: nothing streamed over a network to resume.
            return Ok(result);
        };
        let resume = ResumeState {
            store: self.clone(),
            location: location.clone(),
            options,
            e_tag: result.meta.e_tag.clone(),
            range: result.range.clone(),
            delivered: 0,
            body,
            // Resuming the body draws on the same budget as the request that opened it.
            attempts,
            done: false,
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(resume.into_stream().boxed()),
            ..result
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.list_resuming(prefix, None)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.list_resuming(prefix, Some(offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut attempts = Attempts::new(self.policy);
        loop {
            let error = match tokio::time::timeout(
                self.policy.attempt_timeout,
                self.inner.list_with_delimiter(prefix),
            )
            .await
            {
                Ok(Ok(listed)) => return Ok(listed),
                Ok(Err(e)) => e,
                Err(_) => timed_out(self.policy.attempt_timeout),
            };
            if !attempts.retry_after("list", &error).await {
                return Err(error);
            }
        }
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A streamed body that resumes after a cut or a stall.
struct ResumeState {
    store: RetryingStore,
    location: Path,
    options: GetOptions,
    e_tag: Option<String>,
    /// The byte range of the object this body covers.
    range: Range<u64>,
    /// Bytes handed to the caller so far.
    delivered: u64,
    body: BoxStream<'static, object_store::Result<Bytes>>,
    attempts: Attempts,
    done: bool,
}

impl ResumeState {
    fn into_stream(self) -> impl Stream<Item = object_store::Result<Bytes>> + Send + 'static {
        futures::stream::unfold(self, |mut state| async move {
            if state.done {
                return None;
            }
            loop {
                let timeout = state.store.policy.attempt_timeout;
                let error = match tokio::time::timeout(timeout, state.body.next()).await {
                    Ok(Some(Ok(chunk))) => {
                        state.delivered += chunk.len() as u64;
                        return Some((Ok(chunk), state));
                    }
                    Ok(None) => {
                        let expected = state.range.end - state.range.start;
                        if state.delivered >= expected {
                            return None;
                        }
                        // Ended early without an error: a cut the transport did not notice.
                        object_store::Error::Generic {
                            store: "storage",
                            source: format!(
                                "response body ended after {} of {expected} bytes",
                                state.delivered
                            )
                            .into(),
                        }
                    }
                    Ok(Some(Err(e))) => e,
                    Err(_) => timed_out(timeout),
                };
                match state.reopen(&error).await {
                    Ok(true) => continue,
                    Ok(false) => {
                        state.done = true;
                        return Some((Err(error), state));
                    }
                    Err(reopen_error) => {
                        state.done = true;
                        return Some((Err(reopen_error), state));
                    }
                }
            }
        })
    }

    /// Asks for the rest of the body. Ok(false): no retry is allowed for `error`.
    async fn reopen(&mut self, error: &object_store::Error) -> object_store::Result<bool> {
        loop {
            if !self.attempts.retry_after("read body", error).await {
                return Ok(false);
            }
            let start = self.range.start + self.delivered;
            let mut options = self.options.clone();
            options.range = Some(GetRange::Bounded(start..self.range.end));
            // The rest must come from the same version of the object.
            if let Some(tag) = &self.e_tag {
                options.if_match = Some(tag.clone());
            }
            let reopened = tokio::time::timeout(
                self.store.policy.attempt_timeout,
                self.store.inner.get_opts(&self.location, options),
            )
            .await;
            match reopened {
                Ok(Ok(result)) => {
                    self.body = result.into_stream();
                    return Ok(true);
                }
                Ok(Err(e)) if !is_transient(&e) => return Err(e),
                Ok(Err(e)) => {
                    tracing::warn!(location = %self.location, error = %e, "resuming a cut body failed");
                }
                Err(_) => {
                    tracing::warn!(location = %self.location, "resuming a cut body timed out");
                }
            }
        }
    }
}

impl RetryingStore {
    fn list_resuming(
        &self,
        prefix: Option<&Path>,
        offset: Option<&Path>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let state = ListState {
            store: self.clone(),
            prefix: prefix.cloned(),
            offset: offset.cloned(),
            listing: None,
            seen: HashSet::new(),
            attempts: Attempts::new(self.policy),
            done: false,
        };
        futures::stream::unfold(state, |mut state| async move {
            if state.done {
                return None;
            }
            loop {
                let timeout = state.store.policy.attempt_timeout;
                let listing = state.listing.get_or_insert_with(|| {
                    let inner = &state.store.inner;
                    match &state.offset {
                        Some(offset) => inner.list_with_offset(state.prefix.as_ref(), offset),
                        None => inner.list(state.prefix.as_ref()),
                    }
                });
                let error = match tokio::time::timeout(timeout, listing.next()).await {
                    Ok(Some(Ok(meta))) => {
                        // A listing asked again starts over: skip what was delivered.
                        if state.seen.insert(meta.location.clone()) {
                            return Some((Ok(meta), state));
                        }
                        continue;
                    }
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => e,
                    Err(_) => timed_out(timeout),
                };
                state.listing = None;
                if !state.attempts.retry_after("list", &error).await {
                    state.done = true;
                    return Some((Err(error), state));
                }
            }
        })
        .boxed()
    }
}

struct ListState {
    store: RetryingStore,
    prefix: Option<Path>,
    offset: Option<Path>,
    listing: Option<BoxStream<'static, object_store::Result<ObjectMeta>>>,
    seen: HashSet<Path>,
    attempts: Attempts,
    done: bool,
}

#[cfg(test)]
mod tests;
