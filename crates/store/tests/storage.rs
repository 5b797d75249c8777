//! The object-storage conformance suite: the same tests on the local folder
//! and, when `LORA_FILES_TEST_S3_URL` names one (scripts/test.sh starts
//! an S3-compatible server), on S3.

use bytes::Bytes;
use futures::TryStreamExt;
use lora_files_store::blobs::{Blobs, ObjectKind};
use lora_files_store::testing::{open_s3_uploads, s3_url};
use lora_files_store::StoreError;

async fn json_objects_round_trip_with_their_size(blobs: &Blobs) {
    let stored = blobs.put_new("a/one.json", Bytes::from_static(b"{\"x\": 1}")).await.unwrap();
    assert_eq!(stored.size, 8);
    assert_eq!(blobs.get("a/one.json").await.unwrap(), Bytes::from_static(b"{\"x\": 1}"));
    assert_eq!(blobs.size("a/one.json").await.unwrap(), Some(8));
    assert_eq!(blobs.size("a/missing.json").await.unwrap(), None);
    let streamed: Vec<Bytes> = blobs.stream("a/one.json").await.unwrap().try_collect().await.unwrap();
    assert_eq!(streamed.concat(), b"{\"x\": 1}");
}

async fn only_json_and_jsonl_objects_are_stored(blobs: &Blobs) {
    assert!(matches!(blobs.put_new("a/evil.exe", Bytes::from_static(b"MZ")).await, Err(StoreError::Internal(_))));
    assert!(matches!(blobs.writer("a/notes.txt").await, Err(StoreError::Internal(_))));
    assert_eq!(ObjectKind::of_key("x.jsonl").map(ObjectKind::content_type), Some("application/x-ndjson"));
    assert_eq!(ObjectKind::of_key("x.json").map(ObjectKind::content_type), Some("application/json"));
    assert_eq!(blobs.size("a/evil.exe").await.unwrap(), None, "nothing was written");
}

async fn streamed_writes_store_what_they_write(blobs: &Blobs) {
    let mut writer = blobs.writer("b/big.jsonl").await.unwrap();
    writer.write(b"{}\n").await.unwrap();
    writer.write(b"{\"a\":1}\n\n").await.unwrap();
    let stored = writer.finish().await.unwrap();
    assert_eq!(stored.size, 12);
    assert_eq!(blobs.get("b/big.jsonl").await.unwrap(), Bytes::from_static(b"{}\n{\"a\":1}\n\n"));
}

async fn an_object_is_never_overwritten(blobs: &Blobs) {
    blobs.put_new("c/v1.json", Bytes::from_static(b"[1]")).await.unwrap();
    assert!(blobs.writer("c/v1.json").await.is_err(), "a streamed write refuses an existing key");
    assert_eq!(blobs.get("c/v1.json").await.unwrap(), Bytes::from_static(b"[1]"));
}

async fn the_size_limit_is_refused_before_anything_is_written(blobs: &Blobs) {
    let limit = blobs.max_object_bytes();
    let huge = vec![b' '; limit as usize + 1];
    assert!(matches!(blobs.put_new("d/huge.json", Bytes::from(huge.clone())).await, Err(StoreError::TooLarge { .. })));
    let mut writer = blobs.writer("d/streamed.json").await.unwrap();
    writer.write(b"[").await.unwrap();
    match writer.write(&huge[..limit as usize]).await {
        Err(StoreError::TooLarge { size, limit: l, .. }) => assert_eq!((size, l), (limit + 1, limit)),
        other => panic!("expected too large, got {other:?}"),
    }
    writer.abort().await;
    assert_eq!(blobs.size("d/huge.json").await.unwrap(), None);
    assert_eq!(blobs.size("d/streamed.json").await.unwrap(), None, "an aborted write leaves nothing");
}

async fn ranges_read_exactly_the_bytes_asked_for(blobs: &Blobs) {
    blobs.put_new("g/range.jsonl", Bytes::from_static(b"0123456789")).await.unwrap();
    assert_eq!(blobs.get_range("g/range.jsonl", 2..5).await.unwrap(), Bytes::from_static(b"234"));
    assert_eq!(blobs.get_range("g/range.jsonl", 4..4).await.unwrap(), Bytes::new());
    let streamed: Vec<Bytes> = blobs.stream_range("g/range.jsonl", 7..10).await.unwrap().try_collect().await.unwrap();
    assert_eq!(streamed.concat(), b"789");
    let empty: Vec<Bytes> = blobs.stream_range("g/range.jsonl", 3..3).await.unwrap().try_collect().await.unwrap();
    assert!(empty.is_empty());
}

async fn listing_and_deleting(blobs: &Blobs) {
    for key in ["e/1.json", "e/2.jsonl", "f/3.json"] {
        blobs.put_new(key, Bytes::from_static(b"{}")).await.unwrap();
    }
    let mut listed: Vec<String> = blobs.list("e").await.unwrap().into_iter().map(|(k, _)| k).collect();
    listed.sort();
    assert_eq!(listed, ["e/1.json", "e/2.jsonl"]);
    blobs.delete("e/1.json").await.unwrap();
    blobs.delete("e/1.json").await.unwrap(); // deleting what is gone is fine
    assert_eq!(blobs.list("e").await.unwrap().len(), 1);
}

async fn run_suite(blobs: &Blobs) {
    json_objects_round_trip_with_their_size(blobs).await;
    only_json_and_jsonl_objects_are_stored(blobs).await;
    streamed_writes_store_what_they_write(blobs).await;
    an_object_is_never_overwritten(blobs).await;
    the_size_limit_is_refused_before_anything_is_written(blobs).await;
    ranges_read_exactly_the_bytes_asked_for(blobs).await;
    listing_and_deleting(blobs).await;
}

/// A writer dropped on an error path (neither finished nor aborted) aborts
/// its upload: nothing of it stays on disk (on S3: no open multipart upload).
#[tokio::test]
async fn a_dropped_writer_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Blobs::local(dir.path(), 1 << 20).unwrap();
    let mut writer = blobs.writer("training-files/f/segments/s.jsonl").await.unwrap();
    writer.write(b"{\"a\": 1}\n").await.unwrap();
    drop(writer);
    let files = || walkdir_files(dir.path());
    for _ in 0..200 {
        if files().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(files().is_empty(), "left behind: {:?}", files());
    assert!(blobs.list("training-files").await.unwrap().is_empty());
}

fn walkdir_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walkdir_files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn local_folder_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Blobs::local(dir.path(), 1024).unwrap();
    run_suite(&blobs).await;
}

#[tokio::test]
async fn s3_conforms() {
    let Some(base) = s3_url() else { return };
    let url = format!("{base}/{}", uuid::Uuid::new_v4().simple());
    let blobs = Blobs::s3(&url, 1024).unwrap();
    run_suite(&blobs).await;
}

/// Finding 18 on S3: a writer's multipart upload is open while it writes
/// (the listing sees it) and gone once the writer is dropped, aborted or
/// finished.
#[tokio::test]
async fn s3_writers_leave_no_upload_open() {
    let Some(base) = s3_url() else { return };
    let url = format!("{base}/{}", uuid::Uuid::new_v4().simple());
    let prefix = url::Url::parse(&url).unwrap().path().trim_matches('/').to_owned();
    let blobs = Blobs::s3(&url, 1 << 20).unwrap();

    let mut writer = blobs.writer("w/dropped.jsonl").await.unwrap();
    writer.write(b"{\"a\": 1}\n").await.unwrap();
    assert_eq!(open_s3_uploads(&url).await, [format!("{prefix}/w/dropped.jsonl")]);
    drop(writer);
    // The abort of a dropped writer runs on the runtime, a moment later.
    for _ in 0..200 {
        if open_s3_uploads(&url).await.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(open_s3_uploads(&url).await, Vec::<String>::new(), "a dropped writer aborts its upload");

    let mut writer = blobs.writer("w/aborted.jsonl").await.unwrap();
    writer.write(b"{}\n").await.unwrap();
    writer.abort().await;
    assert_eq!(open_s3_uploads(&url).await, Vec::<String>::new(), "an aborted writer");

    let mut writer = blobs.writer("w/finished.jsonl").await.unwrap();
    writer.write(b"{}\n").await.unwrap();
    writer.finish().await.unwrap();
    assert_eq!(open_s3_uploads(&url).await, Vec::<String>::new(), "a finished writer");
    assert_eq!(blobs.list("w").await.unwrap(), [("w/finished.jsonl".to_owned(), 3)]);
}
