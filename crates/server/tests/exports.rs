//! `format=openai|sharegpt|alpaca` downloads: streamed from a version's
//! JSONL, byte for byte what `lora_files_format::export` writes for the same
//! conversations offline, for the current and an earlier version, with
//! exact sizes and ranges; and the version's o200k token figures in the file
//! detail, equal to the offline export's. On SQLite and PostgreSQL.

use std::path::PathBuf;

use lora_files_format::export::{export, ExportFormat, ExportOptions, Tokenizer};
use lora_files_server::{AppState, Settings};
use lora_files_store::on_both_backends;
use lora_files_store::testing::{enriched_templates, TestStore};
use lora_files_store::training_files::DownloadFormat;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::{Client, StatusCode};

const SECRET: &[u8] = b"a test secret that is long enough for HS256";

async fn serve(t: &TestStore) -> (AppState, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(t.serving(&base, SECRET).await, SECRET, Settings::new());
    let app = lora_files_server::app(state.clone());
    tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await });
    (state, base)
}

/// Imports `count` conversations as `TestStore::import_copies` does, and
/// also writes each one's enriched file into `dir`: the same conversations
/// for an offline export. Returns (id, path) in order.
async fn import_with_files(t: &TestStore, dir: &std::path::Path, count: usize) -> Vec<(String, PathBuf)> {
    let templates = enriched_templates();
    let mut imported = Vec::new();
    for i in 0..count {
        let (old_id, text) = &templates[i % templates.len()];
        let new_id = uuid::Uuid::new_v4().to_string();
        let text = text.replace(old_id.as_str(), &new_id);
        let path = dir.join(format!("fp_conversation_{new_id}.json"));
        std::fs::write(&path, &text).unwrap();
        t.store.conversations().import_enriched(&t.alice, &format!("copy-{i}.json"), bytes::Bytes::from(text)).await.unwrap();
        imported.push((new_id, path));
    }
    imported
}

fn offline(inputs: &[PathBuf], format: ExportFormat, tokenizer: Option<Tokenizer>) -> (Vec<u8>, lora_files_format::export::ExportSummary) {
    let out = tempfile::tempdir().unwrap();
    let options = ExportOptions { format, name: "offline".into(), with_metadata: false, dedup: false, split: None, tokenizer, max_tokens: None };
    let summary = export(inputs, Some(out.path()), &options).unwrap();
    (std::fs::read(out.path().join("offline.train.jsonl")).unwrap(), summary)
}

async fn exports_equal_the_offline_export_for_every_version(t: &TestStore) {
    let (state, base) = serve(t).await;
    let files = state.store.training_files();
    let dir = tempfile::tempdir().unwrap();
    let imported = import_with_files(t, dir.path(), 6).await;
    let ids: Vec<String> = imported.iter().map(|(id, _)| id.clone()).collect();
    let paths: Vec<PathBuf> = imported.iter().map(|(_, path)| path.clone()).collect();
    let v1 = files.create(&t.alice, "Exports", None, &ids[..2]).await.unwrap();
    files.add(&t.alice, &v1.id, &ids[2..5]).await.unwrap();
    let v3 = files.remove(&t.alice, &v1.id, &ids[1]).await.unwrap();
    files.add(&t.alice, &v1.id, &ids[5..]).await.unwrap();
    let current: Vec<PathBuf> = [0, 2, 3, 4, 5].iter().map(|&i| paths[i].clone()).collect();
    let at_v3: Vec<PathBuf> = [0, 2, 3, 4].iter().map(|&i| paths[i].clone()).collect();

    let client = Client::new();
    let token = state.tokens.issue(&t.alice, None, std::time::Duration::from_secs(600));
    for (format, export_format) in [(DownloadFormat::OpenAi, ExportFormat::OpenAi), (DownloadFormat::ShareGpt, ExportFormat::ShareGpt), (DownloadFormat::Alpaca, ExportFormat::Alpaca)] {
        for (version, inputs) in [(None, &current), (Some(v3.version), &at_v3)] {
            let (expected, _) = offline(inputs, export_format, None);
            let mut url = format!("{base}/api/training-files/{}/download?format={}", v1.id, format.as_str());
            if let Some(v) = version {
                url.push_str(&format!("&version={v}"));
            }
            let answer: serde_json::Value = client.get(&url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
            assert_eq!(answer["size"].as_u64(), Some(expected.len() as u64), "{format:?} v{version:?}: the size the API states");
            let filename = answer["filename"].as_str().unwrap();
            assert!(filename.ends_with(&format!(".{}.jsonl", format.as_str())), "{filename}");
            let response = client.get(answer["download_url"].as_str().unwrap()).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()[CONTENT_TYPE], "application/x-ndjson");
            assert_eq!(response.headers()[CONTENT_LENGTH].to_str().unwrap(), expected.len().to_string());
            assert!(response.headers()[CONTENT_DISPOSITION].to_str().unwrap().contains(filename));
            let bytes = response.bytes().await.unwrap();
            assert_eq!(String::from_utf8_lossy(&bytes), String::from_utf8_lossy(&expected), "{format:?} v{version:?}");

            // A resumed download continues with the same bytes.
            let start = expected.len() / 3;
            let response = client.get(answer["download_url"].as_str().unwrap()).header(RANGE, format!("bytes={start}-")).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
            assert_eq!(response.headers()[CONTENT_RANGE].to_str().unwrap(), format!("bytes {start}-{}/{}", expected.len() - 1, expected.len()));
            assert_eq!(&response.bytes().await.unwrap()[..], &expected[start..], "{format:?} resumed at {start}");
        }
    }

    // The file detail states the current version's o200k figures, as the offline export counts them.
    let (openai, summary) = offline(&current, ExportFormat::OpenAi, Some(Tokenizer::o200k()));
    let tokens = summary.tokens.unwrap();
    let detail: serde_json::Value =
        client.get(format!("{base}/api/training-files/{}", v1.id)).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let exports = &detail["exports"];
    assert_eq!(exports["tokenizer"], "o200k_base");
    assert_eq!(exports["total_tokens"].as_u64(), Some(tokens.total));
    assert_eq!(exports["training_tokens"].as_u64(), Some(tokens.training));
    assert_eq!(exports["context_tokens"].as_u64(), Some(tokens.context));
    assert_eq!(exports["examples"].as_u64(), Some(tokens.examples as u64));
    assert_eq!(exports["max_example_tokens"].as_u64(), tokens.max.map(|m| m as u64));
    assert_eq!(exports["sizes"]["openai"].as_u64(), Some(openai.len() as u64));
    assert!(tokens.training > 0 && tokens.context > 0);

    // A format the API does not know is refused, naming the field.
    let refused = client.get(format!("{base}/api/training-files/{}/download?format=csv", v1.id)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body.to_string().contains("format"), "{body}");
}

/// A version whose members predate the figures gets them on first use,
/// counted from its JSONL, and the same as stored ones.
async fn figures_of_older_versions_are_counted_once_on_first_use(t: &TestStore) {
    let (state, _) = serve(t).await;
    let files = state.store.training_files();
    let ids = t.import_copies(&t.alice, 3).await;
    let file = files.create(&t.alice, "Older", None, &ids).await.unwrap();
    let stored = files.export_figures(&t.alice, &file.id, None).await.unwrap();
    t.execute_as_admin("UPDATE training_file_versions SET openai_size = NULL, context_tokens = NULL").await;
    let counted = files.export_figures(&t.alice, &file.id, None).await.unwrap();
    assert_eq!(counted, stored);
    assert!(stored.examples > 0 && stored.total_tokens() > 0);
}

/// The conversations page's search matches what a row's title shows (the
/// persona, arc and topic keys) as well as the id, in any case.
async fn conversations_are_found_by_their_scaffolding_keys(t: &TestStore) {
    use lora_files_store::conversations::ConversationFilter;
    let ids = t.import_copies(&t.alice, enriched_templates().len()).await;
    let all = t.store.conversations().list(&t.alice, &ConversationFilter::default(), 100, None).await.unwrap().items;
    assert_eq!(all.len(), ids.len());
    let persona = all.iter().find_map(|c| c.persona_key.clone()).expect("the fixtures name personas");
    let holds = |c: &lora_files_store::records::ConversationRecord, text: &str| {
        [&c.persona_key, &c.emotional_arc_key, &c.topic_key].iter().any(|k| k.as_deref().is_some_and(|k| k.to_lowercase().contains(text))) || c.conversation_id.contains(text)
    };
    let search = |q: String| {
        let filter = ConversationFilter { q: Some(q), ..Default::default() };
        async move { t.store.conversations().list(&t.alice, &filter, 100, None).await.unwrap().items }
    };
    let found = search(persona.to_uppercase()).await;
    assert!(!found.is_empty());
    assert_eq!(found.len(), all.iter().filter(|c| holds(c, &persona.to_lowercase())).count());
    assert!(found.iter().all(|c| holds(c, &persona.to_lowercase())));
    let by_id = search(ids[0][..8].to_owned()).await;
    assert!(by_id.iter().any(|c| c.conversation_id == ids[0]));
    assert!(search("no such text".into()).await.is_empty());
}

/// `lora-files user passwd` resets a password: the new one signs in, the old one no longer does.
async fn a_password_is_reset_and_the_old_one_no_longer_works(t: &TestStore) {
    let users = t.store.users();
    users.add("carol@example.com", Some("the first password")).await.unwrap();
    users.set_password("Carol@Example.com", "the second password").await.unwrap();
    assert!(users.authenticate("carol@example.com", "the second password").await.unwrap().is_some());
    assert!(users.authenticate("carol@example.com", "the first password").await.unwrap().is_none());
    let unknown = users.set_password("nobody@example.com", "whatever it is").await.unwrap_err();
    assert!(unknown.to_string().contains("nobody@example.com"), "{unknown}");
    assert!(users.set_password("carol@example.com", "").await.is_err());
}

on_both_backends!(
    exports_equal_the_offline_export_for_every_version,
    figures_of_older_versions_are_counted_once_on_first_use,
    conversations_are_found_by_their_scaffolding_keys,
    a_password_is_reset_and_the_old_one_no_longer_works,
);
