//! Storage faults for tests: an [`ObjectStore`] between the services and the
//! real store that counts every call and fails the n-th, as a full disk, a
//! flaky network or an S3 outage would at the worst moment.
//!
//! A call fails in one of three ways ([`Failure`]): refused (nothing
//! happened), with its answer lost (it happened, the caller hears it did not;
//! a read's body breaks after its first chunk), or refused with every call
//! after it (an outage: the failed change cannot clean up either). Calls are every request the
//! services make: puts, gets and heads, deletes, listings, and each step of
//! a multipart upload (start, part, complete, abort). A call can also be
//! held ([`Faults::hold_at`]) while another operation runs, to order a race.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};

/// A kind of storage request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    Put,
    Get,
    Head,
    Delete,
    List,
    Copy,
    UploadStart,
    UploadPart,
    UploadComplete,
    UploadAbort,
}

/// How the failing call fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The request fails and changes nothing.
    Refused,
    /// The request is carried out and then reported as failed, whatever it
    /// answered (an answer lost on the way back); a read's body breaks after
    /// its first chunk.
    Lost,
    /// This request and every one after it are refused (the storage went
    /// away), so cleanup after the failure fails too.
    Outage,
}

impl Failure {
    pub const ALL: [Failure; 3] = [Failure::Refused, Failure::Lost, Failure::Outage];
}

#[derive(Default)]
struct State {
    log: Vec<(Call, String)>,
    armed: Option<(usize, Failure)>,
    fired: Option<(Call, String)>,
    held: Option<(usize, Hold)>,
}

/// A call held back until the test releases it, so that another operation
/// runs at exactly that moment (puts, gets, heads, deletes, and an upload's
/// start, completion and abort can be held).
#[derive(Clone, Default)]
pub struct Hold {
    reached: Arc<tokio::sync::Notify>,
    released: Arc<tokio::sync::Notify>,
}

impl Hold {
    /// Waits until the held call is made.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the held call go on.
    pub fn release(&self) {
        self.released.notify_one();
    }

    async fn wait(&self) {
        self.reached.notify_one();
        self.released.notified().await;
    }
}

/// The switchboard of a faulty store: counts its calls and says which fails.
/// Clones share one state.
#[derive(Clone, Default)]
pub struct Faults(Arc<Mutex<State>>);

impl Faults {
    /// Starts counting from zero, failing nothing.
    pub fn count(&self) {
        *self.state() = State::default();
    }

    /// Starts counting from zero and fails call `n` (the first is 1).
    pub fn fail_at(&self, n: usize, failure: Failure) {
        *self.state() = State { armed: Some((n, failure)), ..State::default() };
    }

    /// Starts counting from zero and holds call `n` until [`Hold::release`].
    pub fn hold_at(&self, n: usize) -> Hold {
        let hold = Hold::default();
        *self.state() = State { held: Some((n, hold.clone())), ..State::default() };
        hold
    }

    /// Fails nothing more (the count goes on).
    pub fn disarm(&self) {
        self.state().armed = None;
    }

    /// Calls made since the last [`Faults::count`] or [`Faults::fail_at`].
    pub fn calls(&self) -> usize {
        self.state().log.len()
    }

    /// Every call since, in order, with the key (or prefix) it named.
    pub fn log(&self) -> Vec<(Call, String)> {
        self.state().log.clone()
    }

    /// The call that was failed, if the armed one came.
    pub fn fired(&self) -> Option<(Call, String)> {
        self.state().fired.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a call; how it must fail, if it is the armed one.
    fn next(&self, call: Call, location: &str) -> Option<Failure> {
        self.next_or_hold(call, location).0
    }

    /// [`Faults::next`], waiting first if the call is the held one.
    async fn step(&self, call: Call, location: &str) -> Option<Failure> {
        let (failure, hold) = self.next_or_hold(call, location);
        if let Some(hold) = hold {
            hold.wait().await;
        }
        failure
    }

    fn next_or_hold(&self, call: Call, location: &str) -> (Option<Failure>, Option<Hold>) {
        let mut state = self.state();
        state.log.push((call, location.to_owned()));
        let hold = state.held.as_ref().filter(|(n, _)| *n == state.log.len()).map(|(_, hold)| hold.clone());
        let failure = match state.armed {
            Some((n, failure)) if n == state.log.len() => {
                state.fired = Some((call, location.to_owned()));
                Some(failure)
            }
            Some((n, Failure::Outage)) if n < state.log.len() => Some(Failure::Outage),
            _ => None,
        };
        (failure, hold)
    }
}

/// `inner` behind `faults`.
pub fn wrap(inner: Arc<dyn ObjectStore>, faults: Faults) -> Arc<dyn ObjectStore> {
    Arc::new(Faulty { inner, faults })
}

fn injected(call: Call, location: &str) -> object_store::Error {
    object_store::Error::Generic { store: "faults", source: format!("injected fault: {call:?} {location}").into() }
}

/// The first chunk of `stream`, then an injected failure.
fn broken<T: Send + 'static>(stream: BoxStream<'static, object_store::Result<T>>, call: Call, location: String) -> BoxStream<'static, object_store::Result<T>> {
    stream.take(1).chain(futures::stream::once(async move { Err(injected(call, &location)) })).boxed()
}

struct Faulty {
    inner: Arc<dyn ObjectStore>,
    faults: Faults,
}

impl fmt::Debug for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({:?})", self.inner)
    }
}

impl fmt::Display for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "faulty {}", self.inner)
    }
}

impl Faulty {
    /// Runs `request` unless the call is refused; a lost answer runs it and then fails.
    async fn plain<T>(&self, call: Call, location: &Path, request: impl std::future::Future<Output = object_store::Result<T>>) -> object_store::Result<T> {
        let location = location.as_ref();
        match self.faults.step(call, location).await {
            None => request.await,
            Some(Failure::Refused | Failure::Outage) => Err(injected(call, location)),
            Some(Failure::Lost) => {
                // Whatever it answered (an object not found, too), the answer is lost.
                let _ = request.await;
                Err(injected(call, location))
            }
        }
    }
}

#[async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> object_store::Result<PutResult> {
        self.plain(Call::Put, location, self.inner.put_opts(location, payload, opts)).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> object_store::Result<Box<dyn MultipartUpload>> {
        let upload = self.plain(Call::UploadStart, location, self.inner.put_multipart_opts(location, opts)).await?;
        Ok(Box::new(FaultyUpload { inner: upload, faults: self.faults.clone(), location: location.to_string() }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let call = if options.head { Call::Head } else { Call::Get };
        match self.faults.step(call, location.as_ref()).await {
            None => self.inner.get_opts(location, options).await,
            Some(Failure::Refused | Failure::Outage) => Err(injected(call, location.as_ref())),
            Some(Failure::Lost) if options.head => {
                let _ = self.inner.get_opts(location, options).await;
                Err(injected(call, location.as_ref()))
            }
            Some(Failure::Lost) => {
                let Ok(result) = self.inner.get_opts(location, options).await else {
                    return Err(injected(call, location.as_ref()));
                };
                let (meta, range, attributes) = (result.meta.clone(), result.range.clone(), result.attributes.clone());
                let payload = GetResultPayload::Stream(broken(result.into_stream(), call, location.to_string()));
                Ok(GetResult { payload, meta, range, attributes })
            }
        }
    }

    async fn get_range(&self, location: &Path, range: Range<u64>) -> object_store::Result<Bytes> {
        self.plain(Call::Get, location, self.inner.get_range(location, range)).await
    }

    async fn head(&self, location: &Path) -> object_store::Result<ObjectMeta> {
        self.plain(Call::Head, location, self.inner.head(location)).await
    }

    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.plain(Call::Delete, location, self.inner.delete(location)).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let location = prefix.map(ToString::to_string).unwrap_or_default();
        match self.faults.next(Call::List, &location) {
            None => self.inner.list(prefix),
            Some(Failure::Refused | Failure::Outage) => futures::stream::once(async move { Err(injected(Call::List, &location)) }).boxed(),
            Some(Failure::Lost) => broken(self.inner.list(prefix), Call::List, location),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let location = prefix.map(ToString::to_string).unwrap_or_default();
        self.plain(Call::List, &Path::from(location.as_str()), self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.plain(Call::Copy, to, self.inner.copy(from, to)).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.plain(Call::Copy, to, self.inner.copy_if_not_exists(from, to)).await
    }
}

/// A multipart upload whose every step counts as a call.
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    faults: Faults,
    location: String,
}

impl fmt::Debug for FaultyUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyUpload({})", self.location)
    }
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let location = self.location.clone();
        match self.faults.next(Call::UploadPart, &location) {
            None => self.inner.put_part(data),
            Some(Failure::Refused | Failure::Outage) => Box::pin(async move { Err(injected(Call::UploadPart, &location)) }),
            Some(Failure::Lost) => {
                let part = self.inner.put_part(data);
                Box::pin(async move {
                    let _ = part.await;
                    Err(injected(Call::UploadPart, &location))
                })
            }
        }
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        match self.faults.step(Call::UploadComplete, &self.location).await {
            None => self.inner.complete().await,
            Some(Failure::Refused | Failure::Outage) => Err(injected(Call::UploadComplete, &self.location)),
            Some(Failure::Lost) => {
                let _ = self.inner.complete().await;
                Err(injected(Call::UploadComplete, &self.location))
            }
        }
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        match self.faults.step(Call::UploadAbort, &self.location).await {
            None => self.inner.abort().await,
            Some(Failure::Refused | Failure::Outage) => Err(injected(Call::UploadAbort, &self.location)),
            Some(Failure::Lost) => {
                let _ = self.inner.abort().await;
                Err(injected(Call::UploadAbort, &self.location))
            }
        }
    }
}
