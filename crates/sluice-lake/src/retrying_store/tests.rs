use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::{ObjectStoreExt, PutPayload};

use super::*;

/// What the next request of a kind does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Answer with a server error.
    Error,
    /// Answer, then cut the body (or listing) after `n` bytes (entries).
    CutAfter(usize),
    /// Never answer.
    Hang,
    /// Answer "not found" (a final answer).
    NotFound,
}

/// Injects queued faults into GET and LIST requests of an in-memory store.
#[derive(Debug, Default)]
struct FaultyStore {
    inner: InMemory,
    gets: Mutex<Vec<Fault>>,
    lists: Mutex<Vec<Fault>>,
    get_requests: AtomicU32,
    list_requests: AtomicU32,
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FaultyStore")
    }
}

fn server_error() -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: "503 Slow Down".into(),
    }
}

fn next_fault(queue: &Mutex<Vec<Fault>>) -> Option<Fault> {
    let mut queue = queue.lock().unwrap();
    (!queue.is_empty()).then(|| queue.remove(0))
}

#[async_trait]
impl ObjectStore for FaultyStore {
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
        self.get_requests.fetch_add(1, Ordering::SeqCst);
        match next_fault(&self.gets) {
            None => self.inner.get_opts(location, options).await,
            Some(Fault::Error) => Err(server_error()),
            Some(Fault::NotFound) => Err(object_store::Error::NotFound {
                path: location.to_string(),
                source: "gone".into(),
            }),
            Some(Fault::Hang) => futures::future::pending().await,
            Some(Fault::CutAfter(n)) => {
                let result = self.inner.get_opts(location, options).await?;
                let (meta, range, attributes) = (
                    result.meta.clone(),
                    result.range.clone(),
                    result.attributes.clone(),
                );
                let bytes = result.bytes().await?;
                let (head, _) = bytes.split_at(n.min(bytes.len()));
                let head = Bytes::copy_from_slice(head);
                let cut = futures::stream::iter(vec![
                    Ok(head),
                    Err(object_store::Error::Generic {
                        store: "S3",
                        source: "error decoding response body: connection reset".into(),
                    }),
                ]);
                Ok(GetResult {
                    payload: GetResultPayload::Stream(cut.boxed()),
                    meta,
                    range,
                    attributes,
                })
            }
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.list_requests.fetch_add(1, Ordering::SeqCst);
        let listing = self.inner.list(prefix);
        match next_fault(&self.lists) {
            None => listing,
            Some(Fault::Error) => futures::stream::once(async { Err(server_error()) }).boxed(),
            Some(Fault::NotFound) => futures::stream::once(async {
                Err(object_store::Error::PermissionDenied {
                    path: "x".to_string(),
                    source: "denied".into(),
                })
            })
            .boxed(),
            Some(Fault::Hang) => listing.take(1).chain(futures::stream::pending()).boxed(),
            Some(Fault::CutAfter(n)) => listing
                .take(n)
                .chain(futures::stream::once(async {
                    Err(object_store::Error::Generic {
                        store: "S3",
                        source: "Error getting list response body".into(),
                    })
                }))
                .boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.list_requests.fetch_add(1, Ordering::SeqCst);
        match next_fault(&self.lists) {
            Some(Fault::Error) => Err(server_error()),
            Some(Fault::Hang) => futures::future::pending().await,
            _ => self.inner.list_with_delimiter(prefix).await,
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

fn fast() -> ReadRetry {
    ReadRetry::default()
        .with_max_attempts(4)
        .with_base_delay(Duration::from_millis(1))
        .with_max_delay(Duration::from_millis(5))
        .with_attempt_timeout(Duration::from_millis(200))
}

async fn store_with(files: &[(&str, &[u8])]) -> (Arc<FaultyStore>, RetryingStore) {
    let faulty = Arc::new(FaultyStore::default());
    for (path, body) in files {
        faulty
            .inner
            .put(&Path::from(*path), PutPayload::from(body.to_vec()))
            .await
            .unwrap();
    }
    let retrying = RetryingStore::new(faulty.clone(), fast());
    (faulty, retrying)
}

#[tokio::test]
async fn failed_and_hanging_reads_are_asked_again() {
    let (faulty, store) = store_with(&[("a/x", b"hello world")]).await;
    *faulty.gets.lock().unwrap() = vec![Fault::Error, Fault::Hang, Fault::Error];
    let started = Instant::now();
    let got = store.get(&Path::from("a/x")).await.unwrap().bytes().await;
    assert_eq!(got.unwrap().as_ref(), b"hello world");
    assert_eq!(faulty.get_requests.load(Ordering::SeqCst), 4);
    assert!(started.elapsed() < Duration::from_secs(5));
    // HEAD and ranges go through the same path.
    *faulty.gets.lock().unwrap() = vec![Fault::Error];
    assert_eq!(store.head(&Path::from("a/x")).await.unwrap().size, 11);
    *faulty.gets.lock().unwrap() = vec![Fault::Error];
    let range = store.get_range(&Path::from("a/x"), 6..11).await.unwrap();
    assert_eq!(range.as_ref(), b"world");
}

#[tokio::test]
async fn a_body_cut_mid_stream_is_resumed_where_it_stopped() {
    let body: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let (faulty, store) = store_with(&[("f", &body)]).await;
    *faulty.gets.lock().unwrap() = vec![Fault::CutAfter(4_000), Fault::CutAfter(1_000)];
    let got = store.get(&Path::from("f")).await.unwrap().bytes().await;
    assert_eq!(got.unwrap().as_ref(), body.as_slice());
    // One request, then two resumptions (the second one cut again).
    assert_eq!(faulty.get_requests.load(Ordering::SeqCst), 3);
    // A cut range is resumed inside the range.
    *faulty.gets.lock().unwrap() = vec![Fault::CutAfter(10)];
    let range = store.get_range(&Path::from("f"), 100..200).await.unwrap();
    assert_eq!(range.as_ref(), &body[100..200]);
}

#[tokio::test]
async fn a_listing_cut_mid_way_delivers_every_entry_once() {
    let files: Vec<(String, Vec<u8>)> = (0..7)
        .map(|i| (format!("src/f{i}.parquet"), vec![i as u8]))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let (faulty, store) = store_with(&refs).await;
    *faulty.lists.lock().unwrap() = vec![Fault::CutAfter(3), Fault::Error, Fault::Hang];
    let listed: Vec<ObjectMeta> = store
        .list(Some(&Path::from("src")))
        .try_collect()
        .await
        .unwrap();
    let mut names: Vec<String> = listed.iter().map(|m| m.location.to_string()).collect();
    names.sort();
    let expected: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(names, expected, "each entry exactly once");
    assert_eq!(faulty.list_requests.load(Ordering::SeqCst), 4);

    *faulty.lists.lock().unwrap() = vec![Fault::Error];
    let listed = store
        .list_with_delimiter(Some(&Path::from("src")))
        .await
        .unwrap();
    assert_eq!(listed.objects.len(), 7);
}

#[tokio::test]
async fn retries_stop_at_final_answers_and_at_the_attempt_budget() {
    let (faulty, store) = store_with(&[("a", b"x")]).await;
    *faulty.gets.lock().unwrap() = vec![Fault::NotFound];
    let err = store.get(&Path::from("a")).await.unwrap_err();
    assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
    assert_eq!(faulty.get_requests.load(Ordering::SeqCst), 1);

    faulty.get_requests.store(0, Ordering::SeqCst);
    *faulty.gets.lock().unwrap() = vec![Fault::Hang; 10];
    let started = Instant::now();
    let err = store.get(&Path::from("a")).await.unwrap_err();
    assert!(err.to_string().contains("no answer within"), "{err}");
    assert_eq!(faulty.get_requests.load(Ordering::SeqCst), 4);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded: {:?}",
        started.elapsed()
    );

    *faulty.lists.lock().unwrap() = vec![Fault::NotFound];
    let err = store.list(None).try_collect::<Vec<_>>().await.unwrap_err();
    assert!(matches!(err, object_store::Error::PermissionDenied { .. }));
}

#[test]
fn backoff_is_capped_and_grows() {
    let policy = ReadRetry::default()
        .with_base_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_millis(300));
    for _ in 0..50 {
        assert!(policy.delay(1) <= Duration::from_millis(100));
        assert!(policy.delay(2) <= Duration::from_millis(200));
        assert!(policy.delay(10) <= Duration::from_millis(300));
    }
}
