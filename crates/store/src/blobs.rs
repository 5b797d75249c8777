//! Object storage through the `object_store` crate: a local folder by default,
//! S3 (or any S3-compatible server) for scale. Only JSON and JSONL objects,
//! never overwritten, size-limited before anything is written.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{GetOptions, GetRange, MultipartUpload, ObjectStore, PutMode, PutOptions, PutPayload, PutResult, UploadPart, WriteMultipart};

use crate::error::StoreError;

/// Default largest object: 512 MiB.
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 512 * 1024 * 1024;

/// What an object holds; its key must end in the matching extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Json,
    Jsonl,
}

impl ObjectKind {
    pub fn of_key(key: &str) -> Option<Self> {
        if key.ends_with(".jsonl") {
            Some(Self::Jsonl)
        } else if key.ends_with(".json") {
            Some(Self::Json)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Jsonl => "application/x-ndjson",
        }
    }
}

/// A finished object: where it is and how big. (Not its SHA-256: what
/// needs one — an enriched file's, a version's — computes it where it has
/// the bytes anyway; hashing every segment took a create's writer a sixth
/// of its time.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    pub size: u64,
}

#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    max_object_bytes: u64,
    description: String,
    /// The folder of a local store, where unfinished uploads can be found.
    local_root: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl Blobs {
    /// `<data_dir>/objects` on the local disk.
    pub fn local(data_dir: &Path, max_object_bytes: u64) -> Result<Self, StoreError> {
        let root = data_dir.join("objects");
        std::fs::create_dir_all(&root).map_err(|e| StoreError::Config(format!("cannot create {}: {e}", root.display())))?;
        let store = LocalFileSystem::new_with_prefix(&root)?;
        Ok(Self { store: Arc::new(store), max_object_bytes, description: format!("local folder {}", root.display()), local_root: Some(root) })
    }

    /// `s3://bucket/prefix`, with credentials, region and endpoint from the
    /// standard AWS environment variables.
    pub fn s3(url: &str, max_object_bytes: u64) -> Result<Self, StoreError> {
        let parsed = url::Url::parse(url).map_err(|e| StoreError::Config(format!("bad storage URL {url:?}: {e}")))?;
        let bucket = parsed.host_str().filter(|b| !b.is_empty()).ok_or_else(|| StoreError::Config(format!("storage URL {url:?} names no bucket")))?;
        let prefix = parsed.path().trim_matches('/').to_owned();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            builder = builder.with_endpoint(&endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        let s3: Arc<AmazonS3> = Arc::new(builder.build()?);
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            s3.clone()
        } else {
            let shared: Arc<dyn ObjectStore> = s3.clone();
            Arc::new(PrefixStore::new(shared, prefix.as_str()))
        };
        Ok(Self { store, max_object_bytes, description: format!("S3 {url}"), local_root: None })
    }

    /// From `--storage-url` (when given) or the data directory.
    pub fn from_config(storage_url: Option<&str>, data_dir: &Path, max_object_bytes: u64) -> Result<Self, StoreError> {
        match storage_url {
            Some(url) if url.starts_with("s3://") => Self::s3(url, max_object_bytes),
            Some(url) => Err(StoreError::Config(format!("unsupported storage URL {url:?}: use s3://bucket/prefix, or omit it for the local folder"))),
            None => Self::local(data_dir, max_object_bytes),
        }
    }

    /// The same objects seen through `wrap` (fault-injection tests put a
    /// failing store between the services and the real one).
    #[cfg(feature = "testing")]
    pub(crate) fn wrapped(&self, wrap: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>) -> Self {
        Self { store: wrap(self.store.clone()), max_object_bytes: self.max_object_bytes, description: self.description.clone(), local_root: self.local_root.clone() }
    }

    /// Uploads a writer started and nobody finished or aborted (a process
    /// killed while writing), last written before `before`. On a local
    /// folder they are the staging files `<key>#<n>`, which listings skip;
    /// `None` on S3, where `object_store` cannot list open multipart uploads.
    pub fn unfinished_uploads(&self, before: std::time::SystemTime) -> Option<Result<(Vec<std::path::PathBuf>, usize), StoreError>> {
        let root = self.local_root.as_ref()?;
        let mut found = (Vec::new(), 0);
        Some(walk_staging_files(root, before, &mut found).map(|()| found).map_err(|e| StoreError::Internal(format!("cannot read {}: {e}", root.display()))))
    }

    pub fn describe(&self) -> &str {
        &self.description
    }

    pub fn max_object_bytes(&self) -> u64 {
        self.max_object_bytes
    }

    fn check(&self, key: &str, size: u64) -> Result<ObjectKind, StoreError> {
        let kind = ObjectKind::of_key(key).ok_or_else(|| StoreError::Internal(format!("refusing to store {key:?}: only .json and .jsonl objects")))?;
        if size > self.max_object_bytes {
            return Err(StoreError::TooLarge { what: format!("object {key}"), size, limit: self.max_object_bytes });
        }
        Ok(kind)
    }

    /// Stores `bytes` at a new key; an existing object is never replaced.
    pub async fn put_new(&self, key: &str, bytes: Bytes) -> Result<StoredObject, StoreError> {
        self.check(key, bytes.len() as u64)?;
        let size = bytes.len() as u64;
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        self.store.put_opts(&ObjectPath::from(key), PutPayload::from(bytes), options).await?;
        Ok(StoredObject { key: key.to_owned(), size })
    }

    /// Starts a streamed object at a new key (an existing object is never
    /// replaced). Writes past the size limit fail; a writer that is not
    /// finished must be aborted.
    pub async fn writer(&self, key: &str) -> Result<ObjectWriter, StoreError> {
        self.check(key, 0)?;
        if self.exists(key).await? {
            return Err(StoreError::Internal(format!("object {key} already exists; objects are never overwritten")));
        }
        let upload = SharedUpload::new(self.store.put_multipart(&ObjectPath::from(key)).await?);
        Ok(ObjectWriter { key: key.to_owned(), inner: Some(WriteMultipart::new(Box::new(upload.clone()))), upload, size: 0, limit: self.max_object_bytes })
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        Ok(self.store.get(&ObjectPath::from(key)).await?.bytes().await?)
    }

    /// The object's bytes, read by a thread outside the async runtime (the
    /// CPU pool's): object_store does a local store's file I/O on the
    /// calling thread there, so the bytes are allocated and freed on that
    /// thread; S3 is read through `runtime`.
    pub fn get_outside_runtime(&self, runtime: &tokio::runtime::Handle, key: &str) -> Result<Bytes, StoreError> {
        if self.local_root.is_some() {
            futures::executor::block_on(self.get(key))
        } else {
            runtime.block_on(self.get(key))
        }
    }

    /// The object's bytes as a stream of chunks.
    pub async fn stream(&self, key: &str) -> Result<BoxStream<'static, Result<Bytes, StoreError>>, StoreError> {
        let result = self.store.get(&ObjectPath::from(key)).await?;
        Ok(result.into_stream().map_err(StoreError::from).boxed())
    }

    /// `range` of the object's bytes as a stream of chunks; an empty range reads nothing.
    pub async fn stream_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<BoxStream<'static, Result<Bytes, StoreError>>, StoreError> {
        if range.is_empty() {
            return Ok(futures::stream::empty().boxed());
        }
        let options = GetOptions { range: Some(GetRange::Bounded(range)), ..GetOptions::default() };
        let result = self.store.get_opts(&ObjectPath::from(key), options).await?;
        Ok(result.into_stream().map_err(StoreError::from).boxed())
    }

    /// `range` of the object's bytes, whole.
    pub async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes, StoreError> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        Ok(self.store.get_range(&ObjectPath::from(key), range).await?)
    }

    /// The stored size, or `None` when there is no such object.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self.store.head(&ObjectPath::from(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.size(key).await?.is_some())
    }

    /// Deletes an object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Every key under `prefix` with its size.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let prefix = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
        self.store
            .list(prefix.as_ref())
            .map_ok(|meta| (meta.location.to_string(), meta.size))
            .try_collect()
            .await
            .map_err(StoreError::from)
    }

    /// Every key under `prefix` with its size and when it was last written.
    pub async fn list_with_age(&self, prefix: &str) -> Result<Vec<(String, u64, chrono::DateTime<chrono::Utc>)>, StoreError> {
        let prefix = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
        self.store
            .list(prefix.as_ref())
            .map_ok(|meta| (meta.location.to_string(), meta.size, meta.last_modified))
            .try_collect()
            .await
            .map_err(StoreError::from)
    }
}

/// Collects the staging files under `dir` older than `before`, and counts the younger ones.
fn walk_staging_files(dir: &Path, before: std::time::SystemTime, found: &mut (Vec<std::path::PathBuf>, usize)) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            walk_staging_files(&entry.path(), before, found)?;
            continue;
        }
        let name = entry.file_name();
        let staging = name.to_str().and_then(|n| n.rsplit_once('#')).is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if file_type.is_file() && staging {
            match entry.metadata()?.modified()? < before {
                true => found.0.push(entry.path()),
                false => found.1 += 1,
            }
        }
    }
    Ok(())
}

/// Parts of one object uploaded at once; more wait (memory stays bounded).
const PARTS_IN_FLIGHT: usize = 4;

/// An object being written in parts. A writer that is neither finished nor
/// aborted (dropped on an error path, or with the task that owned it), or
/// whose finish failed or was cancelled, aborts its upload: on S3 an upload
/// left open is invisible to listings and is billed until aborted.
pub struct ObjectWriter {
    key: String,
    /// `None` once finished or aborted.
    inner: Option<WriteMultipart>,
    /// The upload `inner` drives, kept to abort it when `inner`'s finish fails.
    upload: SharedUpload,
    size: u64,
    limit: u64,
}

impl ObjectWriter {
    /// Appends `bytes`, waiting while too many parts are in flight.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if self.size + bytes.len() as u64 > self.limit {
            return Err(StoreError::TooLarge { what: format!("object {}", self.key), size: self.size + bytes.len() as u64, limit: self.limit });
        }
        let inner = self.inner.as_mut().expect("a writer is used until it is finished or aborted");
        inner.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        self.size += bytes.len() as u64;
        inner.write(bytes);
        Ok(())
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub async fn finish(mut self) -> Result<StoredObject, StoreError> {
        let inner = self.inner.take().expect("a writer is finished once");
        if let Err(error) = inner.finish().await {
            // A part that failed ends `WriteMultipart::finish` before it
            // completes or aborts anything: the upload is still open.
            if let Err(abort) = self.upload.abort_open().await {
                tracing::warn!(key = %self.key, error = %abort, "could not abort an unfinished upload");
            }
            return Err(error.into());
        }
        Ok(StoredObject { key: std::mem::take(&mut self.key), size: self.size })
    }

    pub async fn abort(mut self) {
        if let Some(inner) = self.inner.take() {
            let _ = inner.abort().await;
        }
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if self.upload.ended() {
            return;
        }
        // Never finished, or its finish was cancelled mid-way.
        let (inner, upload, key) = (self.inner.take(), self.upload.clone(), std::mem::take(&mut self.key));
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let aborted = match inner {
                        Some(inner) => inner.abort().await,
                        None => upload.abort_open().await,
                    };
                    if let Err(error) = aborted {
                        tracing::warn!(%key, %error, "could not abort an unfinished upload");
                    }
                });
            }
            Err(_) => tracing::warn!(%key, "an unfinished upload was dropped outside a runtime and is left open"),
        }
    }
}

/// A multipart upload shared by a writer and the [`WriteMultipart`] that
/// drives it, so that the writer can abort it when `WriteMultipart` does not
/// (its `finish` returns a failed part's error with the upload still open).
#[derive(Clone, Debug)]
struct SharedUpload {
    upload: Arc<tokio::sync::Mutex<Box<dyn MultipartUpload>>>,
    /// Completed or aborted (or an abort was tried): nothing is left to abort.
    ended: Arc<AtomicBool>,
}

impl SharedUpload {
    fn new(upload: Box<dyn MultipartUpload>) -> Self {
        Self { upload: Arc::new(tokio::sync::Mutex::new(upload)), ended: Arc::new(AtomicBool::new(false)) }
    }

    fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// Aborts the upload unless it was completed or aborted already.
    async fn abort_open(&self) -> object_store::Result<()> {
        if self.ended.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.upload.lock().await.abort().await
    }
}

#[async_trait::async_trait]
impl MultipartUpload for SharedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        // Only the writer's `WriteMultipart` starts parts, and the writer
        // takes the lock itself only once that is gone.
        self.upload.try_lock().expect("a part is started while nothing else uses the upload").put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let completed = self.upload.lock().await.complete().await;
        if completed.is_ok() {
            self.ended.store(true, Ordering::SeqCst);
        }
        completed
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.abort_open().await
    }
}
