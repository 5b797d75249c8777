//! The HTTP API, spawned on an ephemeral port against a fresh catalogue
//! (SQLite and PostgreSQL) and driven with a real HTTP client.

use std::time::Duration;

use lora_files_server::{AppState, Settings};
use lora_files_store::on_both_backends;
use lora_files_store::testing::{fixture, TestStore};
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

const SECRET: &[u8] = b"a test secret that is long enough for HS256";

struct TestApp<'t> {
    base: String,
    client: Client,
    t: &'t TestStore,
    state: AppState,
    alice: String,
    bob: String,
}

impl<'t> TestApp<'t> {
    async fn spawn(t: &'t TestStore) -> Self {
        Self::spawn_with(t, |_| {}).await
    }

    async fn spawn_with(t: &'t TestStore, adjust: impl FnOnce(&mut Settings)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut settings = Settings::new();
        adjust(&mut settings);
        let state = AppState::new(t.serving(&base, SECRET).await, SECRET, settings);
        let app = lora_files_server::app(state.clone());
        tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await });
        let lifetime = Duration::from_secs(600);
        let alice = state.tokens.issue(&t.alice, None, lifetime);
        let bob = state.tokens.issue(&t.bob, None, lifetime);
        Self { base, client: Client::new(), t, state, alice, bob }
    }

    fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base)).bearer_auth(token)
    }

    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.request(method, path, token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")) })
    }

    /// The file's versions, once version `index` has its digest `field` (waits for it, up to ten seconds).
    async fn versions_once_digested(&self, file_id: &str, index: usize, field: &str) -> Value {
        for _ in 0..500 {
            let (_, versions) = self.call(Method::GET, &format!("/api/training-files/{file_id}/versions"), &self.alice, None).await;
            if versions["versions"][index][field].is_string() {
                return versions;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("version {index} of {file_id} never got its {field}");
    }

    async fn import(&self, token: &str, relative: &str) -> String {
        let body = std::fs::read(fixture(relative)).unwrap();
        let response = self.request(Method::POST, "/api/conversations", token).header("content-type", "application/json").body(body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["conversation"]["conversation_id"].as_str().unwrap().to_owned()
    }

    async fn create(&self, name: &str, ids: &[String]) -> Value {
        let (status, body) = self.call(Method::POST, "/api/training-files", &self.alice, Some(json!({"name": name, "conversation_ids": ids}))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["trainingFile"].clone()
    }
}

fn assert_error(result: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(result.0, status, "{}", result.1);
    assert_eq!(result.1["code"], code, "{}", result.1);
    assert!(result.1["error"].is_string());
}

async fn the_whole_flow_from_import_to_download(t: &TestStore) {
    let app = TestApp::spawn(t).await;
    let first = app.import(&app.alice, "enriched/single-convo-file-1.json").await;
    let second = app.import(&app.alice, "enriched/single-convo-file-2.json").await;
    let third = app.import(&app.alice, "enriched/single-convo-file-3.json").await;

    let (status, list) = app.call(Method::GET, "/api/conversations?enrichment_status=completed&limit=2", &app.alice, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["conversations"].as_array().unwrap().len(), 2);
    let cursor = list["next_cursor"].as_str().unwrap();
    let (_, rest) = app.call(Method::GET, &format!("/api/conversations?limit=2&cursor={cursor}"), &app.alice, None).await;
    assert_eq!(rest["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);

    let file = app.create("Batch 1", &[first.clone(), second.clone()]).await;
    let id = file["id"].as_str().unwrap().to_owned();
    assert_eq!((file["version"].clone(), file["conversation_count"].clone(), file["total_training_pairs"].clone()), (json!(1), json!(2), json!(4)));

    let (status, added) = app.call(Method::POST, &format!("/api/training-files/{id}/add-conversations"), &app.alice, Some(json!({"conversation_ids": [third]}))).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    assert_eq!(added["trainingFile"]["version"], 2);

    // The URL works without credentials and serves exactly the stored version.
    let (status, download) = app.call(Method::GET, &format!("/api/training-files/{id}/download?format=jsonl"), &app.alice, None).await;
    assert_eq!(status, StatusCode::OK, "{download}");
    assert_eq!((download["filename"].clone(), download["expires_in_seconds"].clone()), (json!("Batch 1.jsonl"), json!(3600)));
    let response = app.client.get(download["download_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert!(response.headers()["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"Batch 1.jsonl\""));
    let length: usize = response.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len(), length);
    // Wherever the objects are (S3 in scripts/test.sh's S3 pass), the link
    // serves what `lora-files build` writes for the same three files.
    let fixtures = ["enriched/single-convo-file-1.json", "enriched/single-convo-file-2.json", "enriched/single-convo-file-3.json"];
    assert!(bytes[..] == offline_jsonl(&fixtures)[..], "the download is the offline build's JSONL");
    // A whole download records the version's digest (as its last step, so it may land just after the bytes).
    let versions = app.versions_once_digested(&id, 1, "jsonl_sha256").await;
    let v2 = &versions["versions"][1];
    assert_eq!(v2["jsonl_file_size"], bytes.len());
    assert_eq!(v2["jsonl_sha256"].as_str().unwrap(), sha256_hex(&bytes));
    assert_eq!(v2["json_sha256"], Value::Null, "not downloaded yet: not computed");
    assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 6);

    // A pinned version serves its own bytes.
    let (_, pinned) = app.call(Method::GET, &format!("/api/training-files/{id}/download?format=json&version=1"), &app.alice, None).await;
    assert_eq!(pinned["filename"], "Batch 1-v1.json");
    let v1 = app.client.get(pinned["download_url"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    let versions = app.versions_once_digested(&id, 0, "json_sha256").await;
    assert_eq!(sha256_hex(&v1), versions["versions"][0]["json_sha256"].as_str().unwrap());
    let v1: Value = serde_json::from_slice(&v1).unwrap();
    assert_eq!(v1["training_file_metadata"]["total_conversations"], 2);

    let (_, members) = app.call(Method::GET, &format!("/api/training-files/{id}/conversations"), &app.alice, None).await;
    let member_ids: Vec<&str> = members["conversations"].as_array().unwrap().iter().map(|m| m["conversation_id"].as_str().unwrap()).collect();
    assert_eq!(member_ids, [first.as_str(), second.as_str(), third.as_str()]);

    let (status, renamed) = app.call(Method::PATCH, &format!("/api/training-files/{id}"), &app.alice, Some(json!({"name": "Batch 1 (final)", "description": "ready"}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((renamed["trainingFile"]["name"].clone(), renamed["trainingFile"]["description"].clone()), (json!("Batch 1 (final)"), json!("ready")));

    let (status, _) = app.call(Method::PATCH, &format!("/api/training-files/{id}"), &app.alice, Some(json!({"status": "archived"}))).await;
    assert_eq!(status, StatusCode::OK);
    let refused = app.call(Method::POST, &format!("/api/training-files/{id}/add-conversations"), &app.alice, Some(json!({"conversation_ids": [uuid::Uuid::new_v4().to_string()]}))).await;
    assert_error(&refused, StatusCode::CONFLICT, "not_active");
    app.call(Method::PATCH, &format!("/api/training-files/{id}"), &app.alice, Some(json!({"status": "active"}))).await;

    let (status, removed) = app.call(Method::DELETE, &format!("/api/training-files/{id}/conversations/{second}"), &app.alice, None).await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!((removed["trainingFile"]["version"].clone(), removed["trainingFile"]["conversation_count"].clone()), (json!(3), json!(2)));

    let (status, body) = app.call(Method::DELETE, &format!("/api/training-files/{id}"), &app.alice, None).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_error(&app.call(Method::GET, &format!("/api/training-files/{id}"), &app.alice, None).await, StatusCode::NOT_FOUND, "not_found");
}

/// The JSONL `lora-files build` writes for these fixtures, in this order.
fn offline_jsonl(fixtures: &[&str]) -> Vec<u8> {
    use lora_files_format::build::{build, BuildOptions};
    let out = tempfile::tempdir().unwrap();
    let inputs: Vec<std::path::PathBuf> = fixtures.iter().map(|relative| fixture(relative)).collect();
    let options = BuildOptions { name: "offline".into(), description: None, target_model: Some("llama-3.1-8b".into()), vertical: None, jsonl_meta: false, now: chrono::Utc::now() };
    let summary = build(&inputs, out.path(), &options, |_| {}).unwrap();
    std::fs::read(summary.jsonl_path).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

async fn every_route_but_the_public_ones_needs_a_valid_token(t: &TestStore) {
    let app = TestApp::spawn(t).await;
    let no_token = app.client.get(format!("{}/api/training-files", app.base)).send().await.unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    let body: Value = no_token.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");

    let forged = lora_files_server::auth::TokenKeys::new(b"some other secret entirely, also long").issue(&t.alice, None, Duration::from_secs(600));
    assert_error(&app.call(Method::GET, "/api/training-files", &forged, None).await, StatusCode::UNAUTHORIZED, "unauthorized");
    let expired = expired_token(&t.alice);
    let result = app.call(Method::GET, "/api/training-files", &expired, None).await;
    assert_error(&result, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(result.1["error"].as_str().unwrap().contains("expired"));
    assert_error(&app.call(Method::GET, "/api/training-files", "not.a.jwt", None).await, StatusCode::UNAUTHORIZED, "unauthorized");

    for path in ["/api/health", "/api/openapi.json"] {
        assert_eq!(app.client.get(format!("{}{path}", app.base)).send().await.unwrap().status(), StatusCode::OK, "{path}");
    }
    let login = app.client.post(format!("{}/api/auth/token", app.base)).json(&json!({"email": "alice@example.com", "password": "correct horse battery"})).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let login: Value = login.json().await.unwrap();
    assert_eq!(login["token_type"], "bearer");
    let (status, _) = app.call(Method::GET, "/api/training-files", login["access_token"].as_str().unwrap(), None).await;
    assert_eq!(status, StatusCode::OK);
    for (email, password) in [("alice@example.com", "wrong password"), ("nobody@example.com", "correct horse battery")] {
        let response = app.client.post(format!("{}/api/auth/token", app.base)).json(&json!({"email": email, "password": password})).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "wrong email or password", "the same answer for both");
    }
}

fn expired_token(user: &str) -> String {
    let claims = json!({"sub": user, "exp": chrono::Utc::now().timestamp() - 10});
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(SECRET)).unwrap()
}

async fn a_valid_token_for_an_unknown_user_provisions_it(t: &TestStore) {
    let app = TestApp::spawn(t).await;
    let newcomer = uuid::Uuid::new_v4().to_string();
    let token = app.state.tokens.issue(&newcomer, Some("new@example.com"), Duration::from_secs(600));
    let (status, body) = app.call(Method::GET, "/api/training-files", &token, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.t.store.users().get(&newcomer).await.unwrap().unwrap().email, "new@example.com");
}

async fn other_users_files_answer_404(t: &TestStore) {
    let app = TestApp::spawn(t).await;
    let id = app.import(&app.alice, "enriched/enriched-1.json").await;
    let file = app.create("private", std::slice::from_ref(&id)).await;
    let file_id = file["id"].as_str().unwrap();
    for (method, path) in [
        (Method::GET, format!("/api/training-files/{file_id}")),
        (Method::GET, format!("/api/training-files/{file_id}/download")),
        (Method::GET, format!("/api/training-files/{file_id}/versions")),
        (Method::GET, format!("/api/training-files/{file_id}/conversations")),
        (Method::DELETE, format!("/api/training-files/{file_id}")),
        (Method::GET, format!("/api/conversations/{id}")),
    ] {
        assert_error(&app.call(method, &path, &app.bob, None).await, StatusCode::NOT_FOUND, "not_found");
    }
    let add = app.call(Method::POST, &format!("/api/training-files/{file_id}/add-conversations"), &app.bob, Some(json!({"conversation_ids": [id]}))).await;
    assert_error(&add, StatusCode::NOT_FOUND, "not_found");
    let (_, listed) = app.call(Method::GET, "/api/training-files?status=all", &app.bob, None).await;
    assert_eq!(listed["files"], json!([]));
}

async fn bad_bodies_and_parameters_are_400_naming_the_field(t: &TestStore) {
    let app = TestApp::spawn(t).await;
    let id = app.import(&app.alice, "enriched/enriched-2.json").await;
    let field = |result: &(StatusCode, Value)| result.1["details"]["fields"][0]["path"].as_str().unwrap_or_default().to_owned();

    let malformed = app.request(Method::POST, "/api/training-files", &app.alice).header("content-type", "application/json").body("{\"name\": ").send().await.unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["code"], "validation_error");

    let cases = [
        (json!({"name": 7, "conversation_ids": [id]}), "name"),
        (json!({"name": "x", "conversation_ids": "nope"}), "conversation_ids"),
        (json!({"name": "x", "conversation_ids": [id, 3]}), "conversation_ids[1]"),
        (json!({"conversation_ids": [id]}), "body"),
        (json!({"name": "   ", "conversation_ids": [id]}), "name"),
        (json!({"name": "x".repeat(256), "conversation_ids": [id]}), "name"),
        (json!({"name": "x", "conversation_ids": []}), "conversation_ids"),
        (json!({"name": "x", "conversation_ids": [id, id]}), "conversation_ids[1]"),
        (json!({"name": "x", "conversation_ids": ["not-a-uuid"]}), "conversation_ids[0]"),
    ];
    for (body, expected) in cases {
        let result = app.call(Method::POST, "/api/training-files", &app.alice, Some(body.clone())).await;
        assert_error(&result, StatusCode::BAD_REQUEST, "validation_error");
        assert_eq!(field(&result), expected, "{body} → {}", result.1);
    }

    let file = app.create("named", std::slice::from_ref(&id)).await;
    let file_id = file["id"].as_str().unwrap();
    assert_error(&app.call(Method::POST, "/api/training-files", &app.alice, Some(json!({"name": "named", "conversation_ids": [id]}))).await, StatusCode::CONFLICT, "name_taken");

    let unknown = [uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string()];
    let result = app.call(Method::POST, "/api/training-files", &app.alice, Some(json!({"name": "y", "conversation_ids": unknown}))).await;
    assert_error(&result, StatusCode::BAD_REQUEST, "ineligible_conversations");
    let reported: Vec<(&str, &str)> = result.1["details"]["conversations"].as_array().unwrap().iter().map(|c| (c["conversation_id"].as_str().unwrap(), c["reason"].as_str().unwrap())).collect();
    assert_eq!(reported, [(unknown[0].as_str(), "not_found"), (unknown[1].as_str(), "not_found")]);

    let mut tx = app.t.transaction_as(Some(&app.t.alice)).await;
    let pending = app.import(&app.alice, "enriched/enriched-1.json").await;
    sqlx::query("UPDATE conversations SET enrichment_status = 'not_started' WHERE conversation_id = $1").bind(&pending).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let result = app.call(Method::POST, &format!("/api/training-files/{file_id}/add-conversations"), &app.alice, Some(json!({"conversation_ids": [pending]}))).await;
    assert_error(&result, StatusCode::BAD_REQUEST, "ineligible_conversations");
    assert_eq!(result.1["details"]["conversations"][0], json!({"conversation_id": pending, "reason": "not_completed", "enrichment_status": "not_started"}));

    let result = app.call(Method::POST, &format!("/api/training-files/{file_id}/add-conversations"), &app.alice, Some(json!({"conversation_ids": [id]}))).await;
    assert_error(&result, StatusCode::CONFLICT, "already_in_file");
    assert_eq!(result.1["details"]["conversation_ids"], json!([id]));

    for (query, expected) in [("format=xml", "format"), ("version=0", "version"), ("version=abc", "version"), ("version=9", "version")] {
        let result = app.call(Method::GET, &format!("/api/training-files/{file_id}/download?{query}"), &app.alice, None).await;
        assert_error(&result, StatusCode::BAD_REQUEST, "validation_error");
        assert_eq!(field(&result), expected, "{query}");
    }
    for (path, expected) in [("/api/training-files?limit=0", "limit"), ("/api/training-files?limit=x", "limit"), ("/api/training-files?status=gone", "status"), ("/api/training-files/not-a-uuid", "id")] {
        let result = app.call(Method::GET, path, &app.alice, None).await;
        assert_error(&result, StatusCode::BAD_REQUEST, "validation_error");
        assert_eq!(field(&result), expected, "{path}");
    }
    let post = |body: Vec<u8>| app.request(Method::POST, "/api/conversations", &app.alice).header("content-type", "application/json").body(body).send();
    let neither = post(b"{\"hello\": \"world\"}".to_vec()).await.unwrap();
    assert_eq!(neither.status(), StatusCode::BAD_REQUEST);
    let body: Value = neither.json().await.unwrap();
    assert_eq!((body["details"]["fields"][0]["path"].as_str(), body["code"].as_str()), (Some("$"), Some("validation_error")));
    let mut enriched = std::fs::read(fixture("enriched/single-convo-file-3.json")).unwrap();
    enriched.truncate(2000);
    let truncated: Value = post(enriched).await.unwrap().json().await.unwrap();
    assert_eq!((truncated["details"]["fields"][0]["path"].as_str(), truncated["details"]["fields"][0]["line"].as_u64()), (Some("training_pairs[0]"), Some(49)), "{truncated}");
}

async fn download_links_refuse_tampering_expiry_and_traversal(t: &TestStore) {
    let app = TestApp::spawn(t).await;
    let id = app.import(&app.alice, "enriched/enriched-2.json").await;
    let file = app.create("links", &[id]).await;
    let (_, download) = app.call(Method::GET, &format!("/api/training-files/{}/download", file["id"].as_str().unwrap()), &app.alice, None).await;
    let url = download["download_url"].as_str().unwrap();
    let (prefix, token) = url.rsplit_once('/').unwrap();
    let (payload, signature) = token.split_once('.').unwrap();
    let mut tampered_payload = payload.to_owned();
    tampered_payload.replace_range(5..6, if &payload[5..6] == "A" { "B" } else { "A" });
    for bad in [format!("{prefix}/{tampered_payload}.{signature}"), format!("{prefix}/{payload}.{}", &signature[1..]), format!("{prefix}/{payload}")] {
        let response = app.client.get(&bad).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "forbidden");
    }
    let expired = TestStore::expired_link(&app.state.store, &app.t.alice, file["id"].as_str().unwrap());
    assert_eq!(app.client.get(format!("{}/files/{expired}", app.base)).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    for traversal in ["/files/..%2F..%2Fetc%2Fpasswd", "/files/../catalogue.sqlite3", "/files/%2e%2e/%2e%2e/jwt-secret"] {
        let status = app.client.get(format!("{}{traversal}", app.base)).send().await.unwrap().status();
        assert!(status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND, "{traversal}: {status}");
    }
}

async fn limits_are_enforced_with_clear_errors(t: &TestStore) {
    let app = TestApp::spawn_with(t, |s| {
        s.max_body_bytes = 64 * 1024;
        s.max_ids_per_request = 3;
    })
    .await;
    let big = json!({"name": "big", "conversation_ids": vec!["x".repeat(100); 1000]});
    assert_error(&app.call(Method::POST, "/api/training-files", &app.alice, Some(big)).await, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    let ids: Vec<String> = (0..4).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let result = app.call(Method::POST, "/api/training-files", &app.alice, Some(json!({"name": "many", "conversation_ids": ids}))).await;
    assert_error(&result, StatusCode::BAD_REQUEST, "validation_error");
    assert!(result.1["error"].as_str().unwrap().contains("at most 3"));
    assert_error(&app.call(Method::GET, "/api/nothing-here", &app.alice, None).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(&app.call(Method::PUT, "/api/training-files", &app.alice, None).await, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

async fn health_and_openapi_describe_the_service(t: &TestStore) {
    let app = TestApp::spawn(t).await;
    let health: Value = app.client.get(format!("{}/api/health", app.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health, json!({"status": "ok", "database": "ok", "storage": "ok"}));
    let doc: Value = app.client.get(format!("{}/api/openapi.json", app.base)).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for path in ["/api/training-files", "/api/training-files/{id}", "/api/training-files/{id}/add-conversations", "/api/training-files/{id}/download", "/api/training-files/{id}/versions", "/api/conversations", "/api/conversations/{conversation_id}/enrich", "/api/conversations/enrich", "/api/conversations/{conversation_id}/validation-report", "/api/personas", "/api/auth/token", "/api/health"] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    assert!(doc["paths"]["/api/conversations/{conversation_id}/source"]["put"]["responses"]["409"].is_object(), "the source replacement is documented");
    // The document states the limits the server enforces, so generated clients and fuzzers stay inside them.
    let create = &doc["components"]["schemas"]["CreateRequest"]["properties"];
    assert_eq!(create["conversation_ids"]["maxItems"], 10000, "{create}");
    assert_eq!(create["conversation_ids"]["items"]["format"], "uuid", "{create}");
    assert_eq!(create["conversation_ids"]["uniqueItems"], true, "{create}");
    // Links lead from what makes or lists a file or a conversation to what takes its id (OpenAPI spells them in camelCase).
    let links = &doc["paths"]["/api/training-files"]["post"]["responses"]["201"]["links"];
    assert_eq!((&links["get_file"]["operationId"], &links["get_file"]["parameters"]["path.id"]), (&json!("get_file"), &json!("$response.body#/trainingFile/id")), "{links}");
    let links = &doc["paths"]["/api/conversations"]["get"]["responses"]["200"]["links"];
    assert_eq!(links["create_file"]["requestBody"]["conversation_ids"][0], "$response.body#/conversations/0/conversation_id", "{links}");
    let response = app.client.get(format!("{}/api/health", app.base)).send().await.unwrap();
    assert!(response.headers().contains_key("x-request-id"));
}

async fn raw_conversations_are_imported_enriched_and_reported(t: &TestStore) {
    t.load_scaffolding().await;
    let app = TestApp::spawn(t).await;
    let (status, personas) = app.call(Method::GET, "/api/personas", &app.alice, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(personas["personas"].as_array().unwrap().len(), 3);
    assert_eq!(app.call(Method::GET, "/api/emotional-arcs", &app.alice, None).await.1["emotional_arcs"].as_array().unwrap().len(), 7);
    assert_eq!(app.call(Method::GET, "/api/training-topics", &app.alice, None).await.1["training_topics"].as_array().unwrap().len(), 65);

    let raw = std::fs::read(fixture("raw/single-convo-file-3-raw.json")).unwrap();
    let id = "330dc058-6d75-4609-96f7-b6e87b39f536";
    let query = format!("/api/conversations?persona_key=pragmatic_optimist&emotional_arc_key=shame_to_acceptance&topic_key=grandparent_529&conversation_id={id}");
    let send = |path: String, body: Vec<u8>, content_type: &'static str| {
        app.request(Method::POST, &path, &app.alice).header("content-type", content_type).body(body).send()
    };
    let unknown = send("/api/conversations?persona_key=nobody".into(), raw.clone(), "application/json").await.unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(unknown["details"]["fields"][0]["path"], "persona_key");

    let created = send(query.clone(), raw.clone(), "application/json").await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!((created["conversation"]["enrichment_status"].as_str(), created["conversation"]["source_stage"].as_str()), (Some("not_started"), Some("raw")));

    let (status, run) = app.call(Method::POST, &format!("/api/conversations/{id}/enrich"), &app.alice, None).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!((run["outcome"].as_str(), run["conversation"]["enrichment_status"].as_str()), (Some("enriched"), Some("completed")));
    assert_eq!(run["validation_report"]["summary"], "Validation passed: No issues detected");
    let (_, report) = app.call(Method::GET, &format!("/api/conversations/{id}/validation-report"), &app.alice, None).await;
    assert_eq!((report["enrichment_status"].as_str(), report["can_enrich"].as_bool()), (Some("completed"), Some(false)));
    app.create("From raw", &[id.to_owned()]).await;

    // Text that is not JSON: refused as JSON, kept for review as text/plain.
    let cut = raw[..700].to_vec();
    let refused = send("/api/conversations".into(), cut.clone(), "application/json").await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let kept = send("/api/conversations".into(), cut, "text/plain").await.unwrap();
    assert_eq!(kept.status(), StatusCode::CREATED);
    let kept: Value = kept.json().await.unwrap();
    let kept_id = kept["conversation"]["conversation_id"].as_str().unwrap().to_owned();
    assert!(kept["conversation"]["parse_error"].is_string());

    let unknown_id = "00000000-0000-4000-8000-000000000000";
    let (status, bulk) = app.call(Method::POST, "/api/conversations/enrich", &app.alice, Some(json!({"conversation_ids": [id, kept_id, unknown_id]}))).await;
    assert_eq!(status, StatusCode::OK, "{bulk}");
    assert_eq!(bulk["summary"], json!({"total": 3, "enriched": 0, "failed": 2, "skipped": 1}));
    let outcomes: Vec<&str> = bulk["results"].as_array().unwrap().iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["skipped", "failed", "not_found"]);
    assert_eq!(bulk["results"][1]["enrichment_status"], "validation_failed");
    let (_, report) = app.call(Method::GET, &format!("/api/conversations/{kept_id}/validation-report"), &app.alice, None).await;
    assert_eq!(report["validation_report"]["blockers"][0]["code"], "INVALID_JSON_SYNTAX");
    assert_eq!(report["requires_manual_review"], true);

    assert_error(&app.call(Method::POST, "/api/conversations/enrich", &app.alice, Some(json!({"conversation_ids": []}))).await, StatusCode::BAD_REQUEST, "validation_error");
    assert_error(&app.call(Method::POST, "/api/conversations/enrich", &app.alice, Some(json!({"conversation_ids": [id, id]}))).await, StatusCode::BAD_REQUEST, "validation_error");
    assert_error(&app.call(Method::POST, &format!("/api/conversations/{id}/enrich"), &app.bob, None).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(&app.call(Method::GET, "/api/conversations/not-a-uuid/validation-report", &app.alice, None).await, StatusCode::BAD_REQUEST, "validation_error");
}


/// The path of the first field error.
fn field_of(result: &(StatusCode, Value)) -> String {
    result.1["details"]["fields"][0]["path"].as_str().unwrap_or_default().to_owned()
}

async fn nul_characters_are_refused_naming_the_field_on_both_backends(t: &TestStore) {
    t.load_scaffolding().await;
    let app = TestApp::spawn(t).await;
    let id = app.import(&app.alice, "enriched/enriched-2.json").await;
    let post_token = |email: &str| app.client.post(format!("{}/api/auth/token", app.base)).json(&json!({"email": email, "password": "correct horse battery"})).send();
    let response = post_token("alice\u{0}@example.com").await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["code"].as_str(), body["details"]["fields"][0]["path"].as_str()), (Some("validation_error"), Some("email")), "{body}");
    // What the web login reaches: no user has that address, on either backend.
    assert!(app.t.store.users().authenticate("alice\u{0}@example.com", "correct horse battery").await.unwrap().is_none());
    assert!(app.t.store.users().add("eve\u{0}@example.com", Some("long enough secret")).await.is_err());

    for (path, expected) in [
        ("/api/training-files?q=%00", "q"),
        ("/api/training-files?q=a%00b&status=all", "q"),
        ("/api/conversations?q=%00", "q"),
        ("/api/conversations?persona_key=x%00", "persona_key"),
        ("/api/conversations?emotional_arc_key=%00", "emotional_arc_key"),
        ("/api/conversations?topic_key=%00", "topic_key"),
        ("/api/conversations?enrichment_status=%00", "enrichment_status"),
    ] {
        let result = app.call(Method::GET, path, &app.alice, None).await;
        assert_error(&result, StatusCode::BAD_REQUEST, "validation_error");
        assert_eq!(field_of(&result), expected, "{path}");
    }
    let filter = lora_files_store::conversations::ConversationFilter { q: Some("\0".into()), ..Default::default() };
    assert!(matches!(app.t.store.conversations().list(&app.t.alice, &filter, 10, None).await, Err(lora_files_store::StoreError::Invalid { .. })));

    let create = json!({"name": "nul", "description": "a\u{0}b", "conversation_ids": [id]});
    let result = app.call(Method::POST, "/api/training-files", &app.alice, Some(create)).await;
    assert_error(&result, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(field_of(&result), "description");
    let result = app.call(Method::POST, "/api/training-files", &app.alice, Some(json!({"name": "n\u{0}", "conversation_ids": [id]}))).await;
    assert_eq!(field_of(&result), "name");
    let file = app.create("no nul", std::slice::from_ref(&id)).await;
    let result = app.call(Method::PATCH, &format!("/api/training-files/{}", file["id"].as_str().unwrap()), &app.alice, Some(json!({"description": "\u{0}"}))).await;
    assert_error(&result, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(field_of(&result), "description");
    // An escaped backslash before `u0000` is text, not NUL.
    let result = app.call(Method::PATCH, &format!("/api/training-files/{}", file["id"].as_str().unwrap()), &app.alice, Some(json!({"description": "\\u0000"}))).await;
    assert_eq!(result.0, StatusCode::OK, "{}", result.1);
    assert_eq!(result.1["trainingFile"]["description"], "\\u0000");

    let send = |path: &str, body: Vec<u8>| app.request(Method::POST, path, &app.alice).header("content-type", "application/json").body(body).send();
    let raw = std::fs::read(fixture("raw/single-convo-file-3-raw.json")).unwrap();
    let response = send("/api/conversations?persona_key=a%00b", raw).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["details"]["fields"][0]["path"], "persona_key", "{body}");

    let enriched = std::fs::read_to_string(fixture("enriched/enriched-1.json")).unwrap().replace("\"anxious_planner\"", "\"anxious\\u0000planner\"");
    let response = send("/api/conversations", enriched.into_bytes()).await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("validation_error")), "{body}");
    assert!(body["details"]["fields"][0]["path"].as_str().unwrap().ends_with("persona_key"), "{body}");

    // A token's email claim holding NUL cannot provision an account.
    let token = app.state.tokens.issue(&uuid::Uuid::new_v4().to_string(), Some("x\u{0}@example.com"), Duration::from_secs(600));
    assert_error(&app.call(Method::GET, "/api/training-files", &token, None).await, StatusCode::UNAUTHORIZED, "unauthorized");
}

async fn descriptions_over_the_limit_are_refused_naming_the_field(t: &TestStore) {
    let app = TestApp::spawn(t).await;
    let id = app.import(&app.alice, "enriched/enriched-2.json").await;
    let long = "d".repeat(10_000 + 1);
    let result = app.call(Method::POST, "/api/training-files", &app.alice, Some(json!({"name": "long", "description": long, "conversation_ids": [id]}))).await;
    assert_error(&result, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(field_of(&result), "description");
    let file = app.create("short", std::slice::from_ref(&id)).await;
    let result = app.call(Method::PATCH, &format!("/api/training-files/{}", file["id"].as_str().unwrap()), &app.alice, Some(json!({"description": long}))).await;
    assert_error(&result, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(field_of(&result), "description");
    let at_limit = "d".repeat(10_000);
    let (status, _) = app.call(Method::PATCH, &format!("/api/training-files/{}", file["id"].as_str().unwrap()), &app.alice, Some(json!({"description": at_limit}))).await;
    assert_eq!(status, StatusCode::OK);
}

fn token_with(claims: Value) -> String {
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(SECRET)).unwrap()
}

async fn tokens_are_checked_for_nbf_another_users_email_and_id_spelling(t: &TestStore) {
    let app = TestApp::spawn(t).await;
    let exp = chrono::Utc::now().timestamp() + 600;
    // Alice's email with an unknown subject: refused (accounts are not linked by email), never a 500.
    let stranger = uuid::Uuid::new_v4().to_string();
    let hijack = token_with(json!({"sub": stranger, "exp": exp, "email": "Alice@Example.com"}));
    for _ in 0..2 {
        let result = app.call(Method::GET, "/api/training-files", &hijack, None).await;
        assert_error(&result, StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(result.1["error"].as_str().unwrap().contains("another account"), "{}", result.1);
    }
    assert!(app.t.store.users().get(&stranger).await.unwrap().is_none());

    let early = token_with(json!({"sub": app.t.alice, "exp": exp, "nbf": chrono::Utc::now().timestamp() + 300}));
    let result = app.call(Method::GET, "/api/training-files", &early, None).await;
    assert_error(&result, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(result.1["error"].as_str().unwrap().contains("not valid yet"), "{}", result.1);

    // Alice's id spelled any way is Alice: no new account is provisioned.
    let id = app.import(&app.alice, "enriched/enriched-2.json").await;
    app.create("alice's", &[id]).await;
    let simple = app.t.alice.replace('-', "");
    for sub in [app.t.alice.to_uppercase(), format!("{{{}}}", app.t.alice), format!("urn:uuid:{}", app.t.alice), simple] {
        let token = token_with(json!({"sub": sub, "exp": exp}));
        let (status, listed) = app.call(Method::GET, "/api/training-files", &token, None).await;
        assert_eq!(status, StatusCode::OK, "{sub}: {listed}");
        assert_eq!(listed["files"][0]["name"], "alice's", "{sub}");
    }
    assert_eq!(app.t.admin().await.users().list().await.unwrap().len(), 2, "no user was provisioned");
}

async fn ids_in_any_case_or_form_name_the_same_conversation(t: &TestStore) {
    let app = TestApp::spawn(t).await;
    let first = app.import(&app.alice, "enriched/enriched-1.json").await;
    let second = app.import(&app.alice, "enriched/enriched-2.json").await;
    let upper = first.to_uppercase();
    let (status, got) = app.call(Method::GET, &format!("/api/conversations/{upper}"), &app.alice, None).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["conversation"]["conversation_id"], first.as_str());
    let (status, _) = app.call(Method::GET, &format!("/api/conversations/%7B{first}%7D/validation-report"), &app.alice, None).await;
    assert_eq!(status, StatusCode::OK);

    let result = app.call(Method::POST, "/api/training-files", &app.alice, Some(json!({"name": "dup", "conversation_ids": [first, upper]}))).await;
    assert_error(&result, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(field_of(&result), "conversation_ids[1]");

    let file = app.create("cased", std::slice::from_ref(&upper)).await;
    let file_id = file["id"].as_str().unwrap().to_uppercase();
    let (_, members) = app.call(Method::GET, &format!("/api/training-files/{file_id}/conversations"), &app.alice, None).await;
    assert_eq!(members["conversations"][0]["conversation_id"], first.as_str(), "stored in lower case");
    let result = app.call(Method::POST, &format!("/api/training-files/{file_id}/add-conversations"), &app.alice, Some(json!({"conversation_ids": [upper]}))).await;
    assert_error(&result, StatusCode::CONFLICT, "already_in_file");
    let (status, added) = app.call(Method::POST, &format!("/api/training-files/{file_id}/add-conversations"), &app.alice, Some(json!({"conversation_ids": [format!("urn:uuid:{}", second.to_uppercase())]}))).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let (status, removed) = app.call(Method::DELETE, &format!("/api/training-files/{file_id}/conversations/{}", second.to_uppercase()), &app.alice, None).await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(removed["trainingFile"]["conversation_count"], 1);

    // An import's id in capitals is stored, found and enriched in lower case.
    let raw = std::fs::read(fixture("raw/single-convo-file-3-raw.json")).unwrap();
    let upper_raw = "ABCDEF01-2345-4678-9ABC-DEF012345678";
    let response = app.request(Method::POST, &format!("/api/conversations?conversation_id={upper_raw}"), &app.alice).header("content-type", "application/json").body(raw).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["conversation"]["conversation_id"], upper_raw.to_lowercase());
    assert!(app.t.store.enrichment().report(&app.t.alice, upper_raw).await.is_ok(), "found by its upper-case id");
}

async fn every_problem_with_the_ids_is_reported_in_one_answer(t: &TestStore) {
    let app = TestApp::spawn(t).await;
    let good = app.import(&app.alice, "enriched/enriched-1.json").await;
    let member = app.import(&app.alice, "enriched/enriched-2.json").await;
    let kept = app.request(Method::POST, "/api/conversations", &app.alice).header("content-type", "text/plain").body("{ not json").send().await.unwrap();
    assert_eq!(kept.status(), StatusCode::CREATED);
    let unparsable = kept.json::<Value>().await.unwrap()["conversation"]["conversation_id"].as_str().unwrap().to_owned();
    let unknown = uuid::Uuid::new_v4().to_string();
    let reasons = |result: &(StatusCode, Value)| -> Vec<(u64, String, String)> {
        result.1["details"]["conversations"].as_array().unwrap_or(&Vec::new()).iter().map(|c| (c["index"].as_u64().unwrap(), c["conversation_id"].as_str().unwrap().to_owned(), c["reason"].as_str().unwrap().to_owned())).collect()
    };

    let ids = json!([good, "not-a-uuid", unparsable, unknown, good.to_uppercase()]);
    let result = app.call(Method::POST, "/api/training-files", &app.alice, Some(json!({"name": "all at once", "conversation_ids": ids}))).await;
    assert_error(&result, StatusCode::BAD_REQUEST, "validation_error");
    let expected = [(1, "not-a-uuid".to_owned(), "invalid_id"), (2, unparsable.clone(), "not_completed"), (3, unknown.clone(), "not_found"), (4, good.clone(), "duplicate")];
    let expected: Vec<(u64, String, String)> = expected.into_iter().map(|(i, id, r)| (i, id, r.to_owned())).collect();
    assert_eq!(reasons(&result), expected, "{}", result.1);
    let fields: Vec<&str> = result.1["details"]["fields"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(fields, ["conversation_ids[1]", "conversation_ids[4]"]);

    let file = app.create("members", std::slice::from_ref(&member)).await;
    let file_id = file["id"].as_str().unwrap();
    let add_path = format!("/api/training-files/{file_id}/add-conversations");
    let add = |ids: Value| app.call(Method::POST, &add_path, &app.alice, Some(json!({"conversation_ids": ids})));
    let result = add(json!([member, unknown, good])).await;
    assert_error(&result, StatusCode::BAD_REQUEST, "ineligible_conversations");
    let expected: Vec<(u64, String, String)> = vec![(0, member.clone(), "already_in_file".into()), (1, unknown.clone(), "not_found".into())];
    assert_eq!(reasons(&result), expected, "{}", result.1);
    let result = add(json!([member, "x", unparsable])).await;
    assert_error(&result, StatusCode::BAD_REQUEST, "validation_error");
    let expected: Vec<(u64, String, String)> = vec![(0, member.clone(), "already_in_file".into()), (1, "x".into(), "invalid_id".into()), (2, unparsable.clone(), "not_completed".into())];
    assert_eq!(reasons(&result), expected, "{}", result.1);
    let (_, versions) = app.call(Method::GET, &format!("/api/training-files/{file_id}/versions"), &app.alice, None).await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1, "nothing was added");
}

async fn logins_are_throttled_per_account_and_per_address(t: &TestStore) {
    let app = TestApp::spawn_with(t, |s| {
        s.login_attempts_per_account = std::num::NonZeroU32::new(5).unwrap();
        s.login_attempts_per_address = std::num::NonZeroU32::new(8).unwrap();
    })
    .await;
    let login = |email: &'static str, password: &'static str| app.client.post(format!("{}/api/auth/token", app.base)).json(&json!({"email": email, "password": password})).send();
    for _ in 0..5 {
        assert_eq!(login("alice@example.com", "wrong password").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    // Over the account's limit even the right password waits; the answer says how long.
    let throttled = login("alice@example.com", "correct horse battery").await.unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = throttled.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = throttled.json().await.unwrap();
    assert_eq!(body["code"], "too_many_attempts");
    // Another account from the same address still signs in, until the address's own limit.
    assert_eq!(login("bob@example.com", "another long secret").await.unwrap().status(), StatusCode::OK);
    assert_eq!(login("nobody@example.com", "x").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(login("bob@example.com", "another long secret").await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS, "the address's limit");
}

async fn a_password_less_account_costs_a_real_password_check(t: &TestStore) {
    // A provisioned account has no password: a login with its email runs argon2 against the decoy like any other failure.
    let provisioned = uuid::Uuid::new_v4().to_string();
    app_users(t).provision(&provisioned, Some("token-only@example.com")).await.unwrap();
    let started = std::time::Instant::now();
    assert!(app_users(t).authenticate("alice@example.com", "wrong password").await.unwrap().is_none());
    let real = started.elapsed();
    let started = std::time::Instant::now();
    assert!(app_users(t).authenticate("token-only@example.com", "").await.unwrap().is_none());
    let password_less = started.elapsed();
    // The same argon2 work (not a timing race: a skipped check is ~1000x faster than one argon2 verify).
    assert!(password_less * 20 > real, "password-less {password_less:?} vs real {real:?}");
}

fn app_users(t: &TestStore) -> lora_files_store::Users<'_> {
    t.store.users()
}

async fn conversations_in_files_are_deleted_only_when_forced(t: &TestStore) {
    let app = TestApp::spawn(t).await;
    let ids = t.import_copies(&t.alice, 3).await;
    let file = app.create("Holder", &ids[..2]).await;
    let path = |id: &str| format!("/api/conversations/{id}");
    assert_eq!(app.call(Method::DELETE, &path(&ids[2]), &app.alice, None).await.0, StatusCode::NO_CONTENT);
    assert_error(&app.call(Method::GET, &path(&ids[2]), &app.alice, None).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(&app.call(Method::DELETE, &path(&ids[0]), &app.bob, None).await, StatusCode::NOT_FOUND, "not_found");
    let refused = app.call(Method::DELETE, &path(&ids[0]), &app.alice, None).await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "validation_error");
    assert!(refused.1["error"].as_str().unwrap().contains("\"Holder\""), "{}", refused.1);
    assert_error(&app.call(Method::DELETE, &format!("{}?force=maybe", path(&ids[0])), &app.alice, None).await, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(app.call(Method::DELETE, &format!("{}?force=true", path(&ids[0])), &app.alice, None).await.0, StatusCode::NO_CONTENT);
    let (_, after) = app.call(Method::GET, &format!("/api/training-files/{}", file["id"].as_str().unwrap()), &app.alice, None).await;
    assert_eq!((after["trainingFile"]["conversation_count"].as_i64(), after["trainingFile"]["version"].as_i64()), (Some(1), Some(2)));
}

async fn a_fixed_file_replaces_an_unparsable_source(t: &TestStore) {
    t.load_scaffolding().await;
    let app = TestApp::spawn(t).await;
    let raw = std::fs::read(fixture("raw/single-convo-file-3-raw.json")).unwrap();
    let send = |method: Method, path: String, body: Vec<u8>, content_type: &'static str| {
        app.request(method, &path, &app.alice).header("content-type", content_type).body(body).send()
    };
    let kept = send(Method::POST, "/api/conversations".into(), raw[..700].to_vec(), "text/plain").await.unwrap();
    assert_eq!(kept.status(), StatusCode::CREATED);
    let kept: Value = kept.json().await.unwrap();
    let id = kept["conversation"]["conversation_id"].as_str().unwrap().to_owned();
    let path = format!("/api/conversations/{id}/source?persona_key=pragmatic_optimist&emotional_arc_key=shame_to_acceptance&topic_key=grandparent_529");

    let still_cut = send(Method::PUT, path.clone(), raw[..800].to_vec(), "application/json").await.unwrap();
    assert_eq!(still_cut.status(), StatusCode::BAD_REQUEST);
    let fixed = send(Method::PUT, path.clone(), raw.clone(), "text/plain").await.unwrap();
    assert_eq!(fixed.status(), StatusCode::OK);
    let fixed: Value = fixed.json().await.unwrap();
    let conversation = &fixed["conversation"];
    assert_eq!(conversation["conversation_id"], id.as_str());
    assert_eq!((conversation["source_stage"].as_str(), conversation["enrichment_status"].as_str()), (Some("raw"), Some("not_started")));
    assert!(conversation["parse_error"].is_null(), "{conversation}");
    assert_eq!((conversation["turn_count"].as_i64(), conversation["persona_key"].as_str()), (Some(5), Some("pragmatic_optimist")));

    let (status, run) = app.call(Method::POST, &format!("/api/conversations/{id}/enrich"), &app.alice, None).await;
    assert_eq!((status, run["conversation"]["enrichment_status"].as_str()), (StatusCode::OK, Some("completed")), "{run}");
    let refused = send(Method::PUT, path.clone(), raw[..700].to_vec(), "text/plain").await.unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], "source_locked");
    let other = send(Method::PUT, format!("/api/conversations/{id}/source"), raw.clone(), "application/json").await;
    assert_eq!(other.unwrap().status(), StatusCode::CONFLICT);
    let bobs = app.request(Method::PUT, &format!("/api/conversations/{id}/source"), &app.bob).header("content-type", "application/json").body(raw.clone()).send().await.unwrap();
    assert_eq!(bobs.status(), StatusCode::NOT_FOUND, "another user's conversation");
    let bad_id = send(Method::PUT, "/api/conversations/not-a-uuid/source".into(), raw, "application/json").await.unwrap();
    assert_eq!(bad_id.status(), StatusCode::BAD_REQUEST);
}

on_both_backends!(
    a_fixed_file_replaces_an_unparsable_source,
    the_whole_flow_from_import_to_download,
    every_route_but_the_public_ones_needs_a_valid_token,
    a_valid_token_for_an_unknown_user_provisions_it,
    other_users_files_answer_404,
    bad_bodies_and_parameters_are_400_naming_the_field,
    download_links_refuse_tampering_expiry_and_traversal,
    limits_are_enforced_with_clear_errors,
    health_and_openapi_describe_the_service,
    raw_conversations_are_imported_enriched_and_reported,
    nul_characters_are_refused_naming_the_field_on_both_backends,
    descriptions_over_the_limit_are_refused_naming_the_field,
    tokens_are_checked_for_nbf_another_users_email_and_id_spelling,
    ids_in_any_case_or_form_name_the_same_conversation,
    every_problem_with_the_ids_is_reported_in_one_answer,
    logins_are_throttled_per_account_and_per_address,
    a_password_less_account_costs_a_real_password_check,
    conversations_in_files_are_deleted_only_when_forced,
);
