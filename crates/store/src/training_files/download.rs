//! Downloads: a link that works for an hour without other credentials, and
//! the bytes it names, streamed from the version's manifest (head, ranges of
//! segments, tail) — or, for an export, rendered from its JSONL — with any byte range of them — so a resumed download of a
//! file of any size continues where it stopped.
//!
//! Local storage and S3 are served the same way, through the server: a
//! version is not one object, and materialising one would cost what the file
//! holds on every version. The price on S3 is that the bytes pass through
//! the server (its bandwidth, a few MB of memory per download).

use std::ops::Range;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use lora_files_format::export::stream::write_fragment;
use lora_files_format::export::{ExportFormat, JsonlExporter, RenderSettings};
use sha2::{Digest, Sha256};

use super::manifest::{Layout, Manifest, Part};
use super::{safe_filename, DownloadFormat, TrainingFiles};
use crate::links::{LinkError, LinkTarget};
use crate::{Store, StoreError};

/// Object ranges opened ahead of the one being sent (each a round trip on S3).
const READ_AHEAD: usize = 2;

/// What `GET …/download` answers: a link, already signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadLink {
    pub url: String,
    pub filename: String,
    pub expires_in_seconds: u64,
    pub version: i64,
    pub size: u64,
}

/// What a link resolves to, cached briefly like list pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Described {
    version: i64,
    filename: String,
    size: u64,
}

/// A version's bytes in one format, ready to stream.
pub struct OpenedDownload {
    store: Store,
    target: LinkTarget,
    layout: Layout,
    /// Recorded on an earlier complete download, if one happened.
    pub sha256: Option<String>,
    /// The export rendered from the JSONL (`layout`), and its size.
    export: Option<(ExportFormat, u64)>,
}

impl TrainingFiles<'_> {
    /// A link to the current version of `format`, or to a pinned one.
    pub async fn download(self, user: &str, file_id: &str, format: DownloadFormat, version: Option<i64>) -> Result<DownloadLink, StoreError> {
        let key = (file_id.to_owned(), format, version);
        let described = match self.shared().downloads.get(user, &key) {
            Ok(described) => described,
            Err(generation) => {
                let described = self.describe(user, file_id, format, version).await?;
                self.shared().downloads.put(user, key, generation, described.clone());
                described
            }
        };
        let links = &self.store.config.links;
        let expires = chrono::Utc::now().timestamp() + links.lifetime.as_secs() as i64;
        let target = LinkTarget { owner: user.to_owned(), file_id: file_id.to_owned(), version: described.version, format, filename: described.filename.clone(), expires };
        Ok(DownloadLink {
            url: format!("{}/files/{}", links.public_url.trim_end_matches('/'), self.store.signer.sign(&target)),
            filename: described.filename,
            expires_in_seconds: links.lifetime.as_secs(),
            version: described.version,
            size: described.size,
        })
    }

    async fn describe(self, user: &str, file_id: &str, format: DownloadFormat, version: Option<i64>) -> Result<Described, StoreError> {
        let mut tx = self.store.catalogue.begin_as(user).await?;
        let found: Option<(i64, i64, i64, String)> = sqlx::query_as(
            "SELECT v.version, v.json_file_size, v.jsonl_file_size, f.name FROM training_file_versions v JOIN training_files f ON f.id = v.training_file_id \
             WHERE f.id = $1 AND f.owner_id = $2 AND v.version = COALESCE($3, f.current_version)",
        )
        .bind(file_id)
        .bind(user)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some((found, json_size, jsonl_size, name)) = found else {
            let file = self.get(user, file_id).await?;
            return Err(match file.version {
                0 => StoreError::NotActive(file.status),
                last => StoreError::invalid("version", format!("this file has versions 1 to {last}")),
            });
        };
        let stem = safe_filename(&name);
        let filename = match version {
            Some(v) => format!("{stem}-v{v}.{}", format.extension()),
            None => format!("{stem}.{}", format.extension()),
        };
        let size = match format {
            DownloadFormat::Json => json_size as u64,
            DownloadFormat::Jsonl => jsonl_size as u64,
            export => self.export_size(user, file_id, found, export).await?,
        };
        Ok(Described { version: found, filename, size })
    }

    /// What a link names, if it holds; needs no other credentials.
    pub async fn open_link(self, token: &str) -> Result<OpenedDownload, StoreError> {
        let target = self.store.signer.verify(token, chrono::Utc::now().timestamp()).map_err(StoreError::Link)?;
        self.open_target(target).await
    }

    /// A version's bytes in `format`, for the store's own reads (no link).
    pub(super) async fn open_version(self, user: &str, file_id: &str, version: i64, format: DownloadFormat) -> Result<OpenedDownload, StoreError> {
        let target = LinkTarget { owner: user.to_owned(), file_id: file_id.to_owned(), version, format, filename: String::new(), expires: 0 };
        self.open_target(target).await
    }

    async fn export_size(self, user: &str, file_id: &str, version: i64, format: DownloadFormat) -> Result<u64, StoreError> {
        let export = format.export().expect("only exports are sized from the figures");
        // Boxed: counting a version's figures opens its JSONL, through here.
        let figures = Box::pin(self.export_figures(user, file_id, Some(version))).await?;
        Ok(figures.bytes(export).unwrap_or_default())
    }

    async fn open_target(self, target: LinkTarget) -> Result<OpenedDownload, StoreError> {
        let mut tx = self.store.catalogue.begin_as(&target.owner).await?;
        type Row = (Option<String>, Option<String>, i64, Option<String>, i64, Option<String>, Option<String>);
        let row: Option<Row> = sqlx::query_as(
            "SELECT manifest, json_file_path, json_file_size, jsonl_file_path, jsonl_file_size, json_sha256, jsonl_sha256 \
             FROM training_file_versions WHERE training_file_id = $1 AND version = $2 AND owner_id = $3",
        )
        .bind(&target.file_id)
        .bind(target.version)
        .bind(&target.owner)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        // The file was deleted since the link was made.
        let (manifest, json_path, json_size, jsonl_path, jsonl_size, json_sha256, jsonl_sha256) = row.ok_or(StoreError::Link(LinkError::Gone))?;
        let manifest = match (manifest, json_path, jsonl_path) {
            (Some(text), _, _) => Manifest::from_text(&text)?,
            (None, Some(json), Some(jsonl)) => Manifest::whole_objects((&json, json_size as u64), (&jsonl, jsonl_size as u64)),
            _ => return Err(StoreError::Internal(format!("version {} of {} has neither a manifest nor objects", target.version, target.file_id))),
        };
        let (layout, sha256, export) = match target.format {
            DownloadFormat::Json => (manifest.json, json_sha256, None),
            DownloadFormat::Jsonl => (manifest.jsonl, jsonl_sha256, None),
            // Rendered from the JSONL as it is sent; no digest is kept.
            format => {
                let size = self.export_size(&target.owner, &target.file_id, target.version, format).await?;
                (manifest.jsonl, None, format.export().map(|export| (export, size)))
            }
        };
        Ok(OpenedDownload { store: self.store.clone(), target, layout, sha256, export })
    }
}

impl OpenedDownload {
    pub fn filename(&self) -> &str {
        &self.target.filename
    }

    pub fn content_type(&self) -> &'static str {
        self.target.format.content_type()
    }

    pub fn size(&self) -> u64 {
        match self.export {
            Some((_, size)) => size,
            None => self.layout.len(),
        }
    }

    /// A strong validator: a version's bytes never change.
    pub fn etag(&self) -> String {
        format!("\"{}-v{}-{}\"", self.target.file_id, self.target.version, self.target.format.extension())
    }

    /// Object ranges a whole download reads.
    pub fn ranges(&self) -> usize {
        self.layout.ranges()
    }

    /// The bytes of `range` (all of them when `None`). A complete download
    /// also records the version's SHA-256 the first time.
    /// An export is rendered from the stored JSONL as it goes out.
    pub fn body(self, range: Option<Range<u64>>) -> BoxStream<'static, Result<Bytes, StoreError>> {
        if let Some((format, size)) = self.export {
            return export_body(self.stored_body(None), format, range.unwrap_or(0..size));
        }
        let whole = range.is_none();
        let stream = self.stored_body(range);
        if !whole || self.sha256.is_some() {
            return stream;
        }
        // The digest is recorded when the last byte goes out: a server that
        // knows the length stops polling the body there.
        let total = self.layout.len();
        let (store, target) = (self.store, self.target);
        let mut digest = Some((Sha256::new(), 0u64));
        stream
            .inspect(move |chunk| match chunk {
                Ok(bytes) => {
                    let Some((hasher, seen)) = digest.as_mut() else { return };
                    hasher.update(bytes);
                    *seen += bytes.len() as u64;
                    if *seen == total {
                        let (hasher, _) = digest.take().expect("present above");
                        let (store, target, hex) = (store.clone(), target.clone(), hex::encode(hasher.finalize()));
                        tokio::spawn(async move {
                            if let Err(error) = record_digest(&store, &target, &hex).await {
                                tracing::warn!(file_id = %target.file_id, %error, "could not record a version's SHA-256");
                            }
                        });
                    }
                }
                Err(_) => digest = None,
            })
            .boxed()
    }

    /// The stored bytes of `range` of the layout (all when `None`).
    pub(super) fn stored_body(&self, range: Option<Range<u64>>) -> BoxStream<'static, Result<Bytes, StoreError>> {
        let parts = self.layout.parts(range.unwrap_or(0..self.layout.len()));
        let blobs = self.store.blobs.clone();
        futures::stream::iter(parts)
            .map(move |part| {
                let blobs = blobs.clone();
                async move {
                    match part {
                        Part::Bytes(bytes) => Ok(futures::stream::once(async { Ok(bytes) }).boxed()),
                        Part::Read { key, range } => blobs.stream_range(&key, range).await,
                    }
                }
            })
            .buffered(READ_AHEAD)
            .try_flatten()
            .boxed()
    }
}

/// Rendered bytes gathered before they are sent.
const EXPORT_CHUNK: usize = 64 * 1024;

/// `range` of an export of the JSONL in `jsonl`: the JSONL is read as it
/// arrives and rendered conversation by conversation on the blocking pool,
/// so memory holds a few chunks and one conversation whatever the file holds.
/// A range is served by rendering up to its end (exports are not stored).
fn export_body(jsonl: BoxStream<'static, Result<Bytes, StoreError>>, format: ExportFormat, range: Range<u64>) -> BoxStream<'static, Result<Bytes, StoreError>> {
    let (into_renderer, mut from_reader) = tokio::sync::mpsc::channel::<Result<Bytes, StoreError>>(4);
    let (into_body, from_renderer) = tokio::sync::mpsc::channel::<Result<Bytes, StoreError>>(4);
    tokio::spawn(async move {
        let mut jsonl = jsonl;
        while let Some(chunk) = jsonl.next().await {
            let failed = chunk.is_err();
            if into_renderer.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    tokio::task::spawn_blocking(move || {
        let mut exporter = JsonlExporter::new(RenderSettings { format, with_metadata: false, tokenizer: None });
        let mut window = Window { at: 0, range };
        let mut rendered = Vec::with_capacity(EXPORT_CHUNK);
        let send = |rendered: &mut Vec<u8>, window: &mut Window| match window.cut(std::mem::take(rendered)) {
            Some(bytes) => into_body.blocking_send(Ok(bytes)).is_ok(),
            None => true,
        };
        while let Some(chunk) = from_reader.blocking_recv() {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    let _ = into_body.blocking_send(Err(error));
                    return;
                }
            };
            exporter.feed(&chunk, &mut |fragment| write_fragment(&fragment, &mut rendered));
            if rendered.len() >= EXPORT_CHUNK && (!send(&mut rendered, &mut window) || window.is_done()) {
                return;
            }
        }
        exporter.finish(&mut |fragment| write_fragment(&fragment, &mut rendered));
        send(&mut rendered, &mut window);
    });
    futures::stream::unfold(from_renderer, |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) }).boxed()
}

/// Where the bytes rendered so far are, and the range of them to send.
struct Window {
    at: u64,
    range: Range<u64>,
}

impl Window {
    /// The part of the next rendered bytes inside the range.
    fn cut(&mut self, bytes: Vec<u8>) -> Option<Bytes> {
        let from = self.at;
        self.at += bytes.len() as u64;
        let (start, end) = (self.range.start.max(from), self.range.end.min(self.at));
        (start < end).then(|| Bytes::from(bytes).slice((start - from) as usize..(end - from) as usize))
    }

    fn is_done(&self) -> bool {
        self.at >= self.range.end
    }
}

async fn record_digest(store: &Store, target: &LinkTarget, digest: &str) -> Result<(), StoreError> {
    let sql = match target.format {
        DownloadFormat::Json => "UPDATE training_file_versions SET json_sha256 = $1 WHERE training_file_id = $2 AND version = $3 AND json_sha256 IS NULL",
        DownloadFormat::Jsonl => "UPDATE training_file_versions SET jsonl_sha256 = $1 WHERE training_file_id = $2 AND version = $3 AND jsonl_sha256 IS NULL",
        // Exports are rendered as they are sent; [`OpenedDownload::body`] keeps no digest of them.
        _ => return Ok(()),
    };
    let mut tx = store.catalogue.begin_as(&target.owner).await?;
    sqlx::query(sql).bind(digest).bind(&target.file_id).bind(target.version).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}
