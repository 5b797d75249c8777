//! `/files/<token>` over a version made of several segments: whole
//! downloads, single ranges on and around every segment boundary, resumed
//! downloads (`curl -C -`), `If-Range` and unsatisfiable ranges, on SQLite
//! and PostgreSQL.

use lora_files_server::{AppState, Settings};
use lora_files_store::on_both_backends;
use lora_files_store::testing::TestStore;
use lora_files_store::training_files::DownloadFormat;
use reqwest::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_RANGE, RANGE};
use reqwest::{Client, StatusCode};

const SECRET: &[u8] = b"a test secret that is long enough for HS256";

/// Serves the API on an ephemeral port; returns the store it serves.
async fn serve(t: &TestStore) -> AppState {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(t.serving(&base, SECRET).await, SECRET, Settings::new());
    let app = lora_files_server::app(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    state
}

/// Where the full JSON's conversations begin.
fn head_length(json: &[u8]) -> usize {
    let marker = b"\"conversations\": [";
    json.windows(marker.len()).position(|w| w == marker).unwrap() + marker.len()
}

async fn get(client: &Client, url: &str, headers: &[(reqwest::header::HeaderName, String)]) -> reqwest::Response {
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

async fn ranges_are_exact_at_every_segment_boundary(t: &TestStore) {
    let state = serve(t).await;
    let files = state.store.training_files();
    let ids = t.import_copies(&t.alice, 7).await;
    // Three changes, three segments: the JSONL's boundaries are the sizes of versions 1 and 2.
    let v1 = files.create(&t.alice, "ranges", None, &ids[..2]).await.unwrap();
    let v2 = files.add(&t.alice, &v1.id, &ids[2..5]).await.unwrap();
    let v3 = files.add(&t.alice, &v1.id, &ids[5..]).await.unwrap();
    let client = Client::new();
    for format in [DownloadFormat::Jsonl, DownloadFormat::Json] {
        let link = files.download(&t.alice, &v3.id, format, None).await.unwrap();
        let whole = get(&client, &link.url, &[]).await;
        assert_eq!(whole.status(), StatusCode::OK);
        assert_eq!(whole.headers()[ACCEPT_RANGES], "bytes");
        let etag = whole.headers()[ETAG].to_str().unwrap().to_owned();
        let size: u64 = whole.headers()[CONTENT_LENGTH].to_str().unwrap().parse().unwrap();
        let bytes = whole.bytes().await.unwrap();
        assert_eq!((bytes.len() as u64, size), (link.size, link.size));

        // Where one segment ends and the next begins: after the bodies of
        // versions 1 and 2 (the JSON's header, which states each version's
        // totals, differs in length from one version to the next).
        let head = |b: &[u8]| if format == DownloadFormat::Json { head_length(b) } else { 0 };
        let tail = if format == DownloadFormat::Json { "\n  ]\n}".len() } else { 0 };
        let mut boundaries = Vec::new();
        for earlier in [&v1, &v2] {
            let old = t.download(&t.alice, &v1.id, format, Some(earlier.version)).await;
            boundaries.push((head(&bytes) + old.len() - tail - head(&old)) as i64);
        }
        let mut starts: Vec<u64> = boundaries.iter().flat_map(|b| [b - 2, b - 1, *b, b + 1]).filter(|s| *s >= 0).map(|s| s as u64).collect();
        starts.extend((0..size).step_by((size / 29).max(1) as usize));
        for start in starts {
            for length in [1u64, 2, 3, 4096] {
                let end = (start + length).min(size) - 1;
                let response = get(&client, &link.url, &[(RANGE, format!("bytes={start}-{end}"))]).await;
                assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
                assert_eq!(response.headers()[CONTENT_RANGE].to_str().unwrap(), format!("bytes {start}-{end}/{size}"));
                assert_eq!(&response.bytes().await.unwrap()[..], &bytes[start as usize..=end as usize], "{format:?} bytes {start}-{end}");
            }
        }

        // A resumed download (what `curl -C -` asks) completes the bytes.
        let cut = size / 3;
        let rest = get(&client, &link.url, &[(RANGE, format!("bytes={cut}-")), (IF_RANGE, etag.clone())]).await;
        assert_eq!(rest.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!([&bytes[..cut as usize], &rest.bytes().await.unwrap()[..]].concat(), bytes.to_vec());
        let suffix = get(&client, &link.url, &[(RANGE, "bytes=-10".to_owned())]).await;
        assert_eq!(&suffix.bytes().await.unwrap()[..], &bytes[bytes.len() - 10..]);

        // A changed file (another ETag) is sent whole; a range past the end is 416.
        let stale = get(&client, &link.url, &[(RANGE, "bytes=0-9".to_owned()), (IF_RANGE, "\"another-version\"".to_owned())]).await;
        assert_eq!(stale.status(), StatusCode::OK);
        assert_eq!(stale.bytes().await.unwrap(), bytes);
        let past = get(&client, &link.url, &[(RANGE, format!("bytes={size}-"))]).await;
        assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(past.headers()[CONTENT_RANGE].to_str().unwrap(), format!("bytes */{size}"));
    }
}

on_both_backends!(ranges_are_exact_at_every_segment_boundary);
