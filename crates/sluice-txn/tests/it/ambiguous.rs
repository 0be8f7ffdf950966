//! Ambiguous creates: the store applies a create-if-absent put but answers with an error.
//! Either the error reaches the journal, or the client retries and its retry meets its own
//! object ("already exists", HTTP 412). Either way the writer must recognise its own record
//! instead of taking it for another process's (which, for a lease, locked the key out for
//! the whole ttl).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use serde_json::json;
use sluice_txn::{Engine, Error, HookState, Journal, ObjectStoreJournal, State};

use crate::common::{Recorder, fast_hooks, steps_with_hooks};

/// How an applied create is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// A server error, as when the response was lost.
    ServerError,
    /// "Already exists": the client retried after the lost response and met its own object.
    AlreadyExists,
}

/// Applies every `every`-th create-if-absent put, then answers it with an error.
#[derive(Debug)]
struct AmbiguousCreates {
    inner: InMemory,
    answer: Answer,
    every: usize,
    creates: AtomicUsize,
    ambiguous: AtomicUsize,
}

impl AmbiguousCreates {
    fn new(answer: Answer, every: usize) -> Self {
        Self {
            inner: InMemory::new(),
            answer,
            every,
            creates: AtomicUsize::new(0),
            ambiguous: AtomicUsize::new(0),
        }
    }
}

impl fmt::Display for AmbiguousCreates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AmbiguousCreates({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for AmbiguousCreates {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let create = matches!(opts.mode, PutMode::Create);
        let result = self.inner.put_opts(location, payload, opts).await?;
        if create
            && self
                .creates
                .fetch_add(1, Ordering::SeqCst)
                .is_multiple_of(self.every)
        {
            self.ambiguous.fetch_add(1, Ordering::SeqCst);
            return Err(match self.answer {
                Answer::ServerError => object_store::Error::Generic {
                    store: "S3",
                    source: "500 Internal Server Error (the write was applied)".into(),
                },
                Answer::AlreadyExists => object_store::Error::AlreadyExists {
                    path: location.to_string(),
                    source: "412 Precondition Failed on the client's retry".into(),
                },
            });
        }
        Ok(result)
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
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
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

fn engine_over(store: Arc<AmbiguousCreates>, rec: &Recorder) -> Engine {
    Engine::builder(ObjectStoreJournal::new(store, "journal"))
        .registry(rec.registry())
        .hook_retry(fast_hooks())
        .build()
}

async fn run_through_ambiguous_creates(answer: Answer, every: usize) {
    let store = Arc::new(AmbiguousCreates::new(answer, every));
    let rec = Recorder::default();
    let engine = engine_over(Arc::clone(&store), &rec);
    // The very first create is the lease record of the key.
    let outcome = engine
        .transaction("batch-1")
        .run(async |tx| {
            steps_with_hooks(&tx, 0..2).await?;
            Ok(json!("ok"))
        })
        .await
        .unwrap_or_else(|e| panic!("{answer:?} every {every}: {e}"));
    assert!(store.ambiguous.load(Ordering::SeqCst) > 0);
    assert_eq!(
        outcome.state(),
        State::Completed,
        "{answer:?} every {every}"
    );
    assert_eq!(rec.entries(), vec!["commit-0", "commit-1"]);
    let report = engine.show_run(outcome.run_id()).await.unwrap();
    assert_eq!(report.hooks.len(), 4, "each hook journalled once");
    assert!(report.commit_actions().all(|h| h.state == HookState::Done));
    assert!(report.damaged_records.is_empty());

    // The key was released, not left leased: the same key is skipped at once, and recovery
    // finds nothing.
    let again = engine
        .transaction("batch-1")
        .run(async |_| Ok(json!("not run")))
        .await
        .unwrap();
    assert_eq!(again.state(), State::Skipped);
    let recovery = engine.recover().await.unwrap();
    assert!(recovery.recovered.is_empty() && recovery.still_running.is_empty());

    // Another engine (another process) is not locked out of a new key either.
    let other = engine_over(Arc::clone(&store), &rec);
    let next = other
        .transaction("batch-2")
        .run(async |_| Ok(json!("ok")))
        .await
        .unwrap();
    assert_eq!(next.state(), State::Completed);
}

#[tokio::test]
async fn an_applied_create_answered_with_a_server_error_is_recognised() {
    run_through_ambiguous_creates(Answer::ServerError, 1).await;
    run_through_ambiguous_creates(Answer::ServerError, 2).await;
}

#[tokio::test]
async fn an_applied_create_whose_retry_met_its_own_object_is_recognised() {
    run_through_ambiguous_creates(Answer::AlreadyExists, 1).await;
    run_through_ambiguous_creates(Answer::AlreadyExists, 3).await;
}

#[tokio::test]
async fn a_slot_taken_by_other_bytes_is_still_a_conflict() {
    let store = Arc::new(AmbiguousCreates::new(Answer::AlreadyExists, 1));
    let journal = ObjectStoreJournal::new(store, "journal");
    // Applied, answered "already exists", recognised as ours.
    journal
        .append("s", 0, Bytes::from_static(b"mine"))
        .await
        .unwrap();
    let err = journal
        .append("s", 0, Bytes::from_static(b"someone else's"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AppendConflict { seq: 0, .. }), "{err}");
    assert_eq!(
        journal.read("s", 0).await.unwrap(),
        vec![(0, Bytes::from_static(b"mine"))]
    );
}
