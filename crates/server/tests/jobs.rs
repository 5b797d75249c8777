//! Changes as background jobs over HTTP: `Prefer: respond-async`, the job
//! routes and their event stream, on SQLite and PostgreSQL, with workers in
//! the test process as `serve --workers N` runs them.

use std::time::Duration;

use lora_files_server::{AppState, Settings};
use lora_files_store::jobs::worker::{WorkerSettings, Workers};
use lora_files_store::on_both_backends;
use lora_files_store::testing::TestStore;
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

const SECRET: &[u8] = b"a test secret that is long enough for HS256";

struct TestApp<'t> {
    base: String,
    client: Client,
    alice: String,
    workers: Option<Workers>,
    _t: std::marker::PhantomData<&'t TestStore>,
}

impl<'t> TestApp<'t> {
    /// The server with `workers` job workers of its own (0: none, as `serve --workers 0`).
    async fn spawn(t: &'t TestStore, workers: usize, adjust: impl FnOnce(&mut Settings)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut settings = Settings::new();
        settings.job_workers = workers;
        adjust(&mut settings);
        let store = t.serving(&base, SECRET).await;
        let state = AppState::new(store.clone(), SECRET, settings);
        let app = lora_files_server::app(state.clone());
        tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await });
        let workers = (workers > 0).then(|| Workers::spawn(store, worker_settings(workers), Some(state.metrics.on_finished())));
        let alice = state.tokens.issue(&t.alice, None, Duration::from_secs(600));
        Self { base, client: Client::new(), alice, workers, _t: std::marker::PhantomData }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.alice)
    }

    async fn send(request: RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let text = response.text().await.unwrap();
        (status, headers, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")) })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, _, body) = Self::send(request).await;
        (status, body)
    }

    /// A change asked for with `Prefer: respond-async`.
    async fn call_async(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.request(method, path).header("prefer", "respond-async, wait=5");
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::send(request).await
    }

    /// The whole event stream of a job, as `(event, data)` pairs (it ends by itself).
    async fn events(&self, location: &str) -> Vec<(String, Value)> {
        let response = self.request(Method::GET, &format!("{location}/events")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let text = tokio::time::timeout(Duration::from_secs(60), response.text()).await.expect("the stream ends").unwrap();
        text.split("\n\n")
            .filter(|block| block.contains("data:"))
            .map(|block| {
                let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned()).unwrap_or_default();
                (field("event:"), serde_json::from_str(&field("data:")).unwrap())
            })
            .collect()
    }

    async fn stop(self) {
        if let Some(workers) = self.workers {
            workers.shutdown().await;
        }
    }
}

fn worker_settings(workers: usize) -> WorkerSettings {
    WorkerSettings { workers, lease: Duration::from_secs(5), idle_poll: Duration::from_millis(20) }
}

fn location(headers: &reqwest::header::HeaderMap) -> String {
    headers.get("location").expect("a Location header").to_str().unwrap().to_owned()
}

async fn respond_async_answers_202_and_the_events_end_in_succeeded(t: &TestStore) {
    let app = TestApp::spawn(t, 1, |_| {}).await;
    let ids = t.import_copies(&t.alice, 3).await;
    let (status, headers, body) = app.call_async(Method::POST, "/api/training-files", Some(json!({"name": "later", "conversation_ids": ids[..2]}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(headers["preference-applied"], "respond-async");
    let job_id = body["job"]["id"].as_str().unwrap();
    assert_eq!(location(&headers), format!("/api/jobs/{job_id}"));
    assert_eq!((body["job"]["kind"].as_str(), body["job"]["total"].as_i64()), (Some("create"), Some(2)));
    let file_id = body["trainingFile"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["job"]["training_file_id"], file_id);

    let events = app.events(&location(&headers)).await;
    let (last, job) = events.last().unwrap();
    assert_eq!(last, "succeeded", "{events:?}");
    assert_eq!((job["state"].as_str(), job["done"].as_i64(), job["attempts"].as_i64()), (Some("succeeded"), Some(2), Some(1)), "{job}");
    assert!(events[..events.len() - 1].iter().all(|(name, _)| name == "progress"), "{events:?}");
    let (_, file) = app.call(Method::GET, &format!("/api/training-files/{file_id}"), None).await;
    assert_eq!((file["trainingFile"]["status"].as_str(), file["trainingFile"]["version"].as_i64()), (Some("active"), Some(1)));

    // An add the same way; then a remove without the header waits and answers as before jobs.
    let (status, headers, body) = app.call_async(Method::POST, &format!("/api/training-files/{file_id}/add-conversations"), Some(json!({"conversation_ids": [ids[2]]}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["trainingFile"]["version"], 1, "the file as it is while the add is queued");
    assert_eq!(app.events(&location(&headers)).await.last().unwrap().0, "succeeded");
    let (status, body) = app.call(Method::DELETE, &format!("/api/training-files/{file_id}/conversations/{}", ids[0]), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["trainingFile"]["version"].as_i64(), body["trainingFile"]["conversation_count"].as_i64()), (Some(3), Some(2)));
    let (_, jobs) = app.call(Method::GET, "/api/jobs?state=succeeded", None).await;
    assert_eq!(jobs["jobs"].as_array().unwrap().iter().map(|j| j["kind"].as_str().unwrap()).collect::<Vec<_>>(), ["remove", "add", "create"]);
    app.stop().await;
}

async fn a_create_through_the_queue_answers_201_as_before(t: &TestStore) {
    let app = TestApp::spawn(t, 1, |_| {}).await;
    let ids = t.import_copies(&t.alice, 2).await;
    let (status, body) = app.call(Method::POST, "/api/training-files", Some(json!({"name": "waited", "conversation_ids": ids}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!((body["trainingFile"]["status"].as_str(), body["trainingFile"]["version"].as_i64()), (Some("active"), Some(1)));
    let (_, jobs) = app.call(Method::GET, "/api/jobs", None).await;
    assert_eq!(jobs["jobs"][0]["state"], "succeeded", "it went through the queue: {jobs}");
    // Refusals come before anything is queued, with the same answers as a direct create.
    let (status, body) = app.call(Method::POST, "/api/training-files", Some(json!({"name": "waited", "conversation_ids": ids}))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("name_taken")));
    app.stop().await;
}

async fn past_the_sync_wait_the_answer_is_202(t: &TestStore) {
    // Jobs go through the queue, but no worker takes them before the (zero) wait is over.
    let app = TestApp::spawn(t, 0, |s| (s.job_workers, s.sync_wait) = (1, Duration::ZERO)).await;
    let ids = t.import_copies(&t.alice, 2).await;
    let file = t.store.training_files().create(&t.alice, "f", None, &ids[..1]).await.unwrap();
    let (status, headers, body) = TestApp::send(app.request(Method::POST, &format!("/api/training-files/{}/add-conversations", file.id)).json(&json!({"conversation_ids": [ids[1]]}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(headers.get("preference-applied").is_none(), "not asked for");
    assert_eq!(body["job"]["state"], "queued");
    let workers = Workers::spawn(t.store.clone(), worker_settings(1), None);
    assert_eq!(app.events(&location(&headers)).await.last().unwrap().0, "succeeded");
    workers.shutdown().await;
    app.stop().await;
}

async fn cancelling_a_queued_create_leaves_nothing_behind(t: &TestStore) {
    let app = TestApp::spawn(t, 0, |_| {}).await;
    let ids = t.import_copies(&t.alice, 2).await;
    let objects_before = t.objects("training-files").await;
    let (status, headers, body) = app.call_async(Method::POST, "/api/training-files", Some(json!({"name": "never", "conversation_ids": ids}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!((body["job"]["state"].as_str(), body["trainingFile"]["status"].as_str()), (Some("queued"), Some("processing")));
    let file_id = body["trainingFile"]["id"].as_str().unwrap().to_owned();
    let (_, queued) = app.call(Method::GET, "/api/jobs?state=queued", None).await;
    assert_eq!(queued["jobs"].as_array().unwrap().len(), 1);

    let (status, body) = app.call(Method::POST, &format!("{}/cancel", location(&headers)), None).await;
    assert_eq!((status, body["job"]["state"].as_str()), (StatusCode::OK, Some("cancelled")), "{body}");
    assert_eq!(app.events(&location(&headers)).await.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(), ["cancelled"]);
    let (status, _) = app.call(Method::GET, &format!("/api/training-files/{file_id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, files) = app.call(Method::GET, "/api/training-files?status=all", None).await;
    assert_eq!(files["files"], json!([]));
    assert_eq!(t.objects("training-files").await, objects_before, "no object written");
    let (_, queued) = app.call(Method::GET, "/api/jobs?state=queued", None).await;
    assert_eq!(queued["jobs"], json!([]));
    let (_, cancelled) = app.call(Method::GET, "/api/jobs?state=cancelled", None).await;
    assert_eq!(cancelled["jobs"][0]["id"], body["job"]["id"]);
    // The name is free again.
    let (status, body) = app.call(Method::POST, "/api/training-files", Some(json!({"name": "never", "conversation_ids": ids}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.stop().await;
}

async fn jobs_are_listed_in_pages_and_bad_parameters_name_the_field(t: &TestStore) {
    let app = TestApp::spawn(t, 0, |_| {}).await;
    let ids = t.import_copies(&t.alice, 1).await;
    for name in ["a", "b", "c"] {
        let (status, _, body) = app.call_async(Method::POST, "/api/training-files", Some(json!({"name": name, "conversation_ids": ids}))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, first) = app.call(Method::GET, "/api/jobs?state=queued&limit=2", None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["jobs"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, rest) = app.call(Method::GET, &format!("/api/jobs?state=queued&limit=2&cursor={cursor}"), None).await;
    assert_eq!((rest["jobs"].as_array().unwrap().len(), &rest["next_cursor"]), (1, &Value::Null));
    let (status, body) = app.call(Method::GET, "/api/jobs?state=done", None).await;
    assert_eq!((status, body["details"]["fields"][0]["path"].as_str()), (StatusCode::BAD_REQUEST, Some("state")), "{body}");
    let (status, body) = app.call(Method::GET, "/api/jobs/not-a-uuid", None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("validation_error")));
    let (status, body) = app.call(Method::POST, &format!("/api/jobs/{}/cancel", uuid::Uuid::new_v4()), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let anonymous = app.client.get(format!("{}/api/jobs", app.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn a_failed_create_leaves_the_file_failed_and_a_failed_add_the_previous_version(t: &TestStore) {
    let app = TestApp::spawn(t, 0, |_| {}).await;
    let ids = t.import_copies(&t.alice, 3).await;
    let file = t.store.training_files().create(&t.alice, "kept", None, &ids[..1]).await.unwrap();
    let (_, create, created) = app.call_async(Method::POST, "/api/training-files", Some(json!({"name": "doomed", "conversation_ids": ids[1..]}))).await;
    let (_, add, _) = app.call_async(Method::POST, &format!("/api/training-files/{}/add-conversations", file.id), Some(json!({"conversation_ids": [ids[2]]}))).await;
    // A source disappears between the requests and the work.
    let source = t.store.conversations().get(&t.alice, &ids[2]).await.unwrap().unwrap();
    t.delete_object(source.enriched_file_path.as_deref().unwrap()).await;
    let workers = Workers::spawn(t.store.clone(), worker_settings(1), None);
    for location in [location(&create), location(&add)] {
        let events = app.events(&location).await;
        let (last, job) = events.last().unwrap();
        assert_eq!(last, "failed", "{events:?}");
        assert!(job["error"].as_str().unwrap().contains("storage"), "{job}");
    }
    workers.shutdown().await;
    let (_, doomed) = app.call(Method::GET, &format!("/api/training-files/{}", created["trainingFile"]["id"].as_str().unwrap()), None).await;
    assert_eq!(doomed["trainingFile"]["status"], "failed");
    let (_, kept) = app.call(Method::GET, &format!("/api/training-files/{}", file.id), None).await;
    assert_eq!((kept["trainingFile"]["status"].as_str(), kept["trainingFile"]["version"].as_i64()), (Some("active"), Some(1)));
    app.stop().await;
}

async fn the_openapi_document_describes_the_job_routes(t: &TestStore) {
    let app = TestApp::spawn(t, 0, |_| {}).await;
    let (_, doc) = app.call(Method::GET, "/api/openapi.json", None).await;
    for path in ["/api/jobs", "/api/jobs/{id}", "/api/jobs/{id}/cancel", "/api/jobs/{id}/events"] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["paths"]["/api/training-files"]["post"]["responses"]["202"].is_object());
    assert!(doc["components"]["schemas"]["Job"].is_object());
    app.stop().await;
}

/// The value of the one sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} ")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

async fn metrics_count_requests_by_route_and_jobs_by_kind_and_state(t: &TestStore) {
    let app = TestApp::spawn(t, 1, |s| s.metrics = true).await;
    let ids = t.import_copies(&t.alice, 2).await;
    let (status, headers, body) = app.call_async(Method::POST, "/api/training-files", Some(json!({"name": "measured", "conversation_ids": ids}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(app.events(&location(&headers)).await.last().unwrap().0, "succeeded");
    let file_id = body["trainingFile"]["id"].as_str().unwrap();
    for _ in 0..2 {
        assert_eq!(app.call(Method::GET, &format!("/api/training-files/{file_id}"), None).await.0, StatusCode::OK);
    }
    assert_eq!(app.call(Method::GET, &format!("/api/training-files/{}", uuid::Uuid::new_v4()), None).await.0, StatusCode::NOT_FOUND);

    let response = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    let requests = "lora_files_http_requests_total";
    assert_eq!(sample(&text, requests, &[r#"route="/api/training-files""#, r#"method="POST""#, r#"status="202""#]), Some(1.0), "{text}");
    assert_eq!(sample(&text, requests, &[r#"route="/api/training-files/{id}""#, r#"method="GET""#, r#"status="200""#]), Some(2.0), "by route, not by URL: {text}");
    assert_eq!(sample(&text, requests, &[r#"route="/api/training-files/{id}""#, r#"status="404""#]), Some(1.0));
    assert_eq!(sample(&text, "lora_files_http_request_duration_seconds_count", &[r#"route="/api/training-files/{id}""#, r#"method="GET""#]), Some(3.0));
    assert_eq!(sample(&text, "lora_files_jobs", &[r#"kind="create""#, r#"state="succeeded""#]), Some(1.0));
    assert_eq!(sample(&text, "lora_files_jobs", &[r#"kind="add""#, r#"state="queued""#]), Some(0.0));
    assert_eq!(sample(&text, "lora_files_job_queue_depth", &[]), Some(0.0));
    assert_eq!(sample(&text, "lora_files_job_duration_seconds_count", &[r#"kind="create""#, r#"state="succeeded""#]), Some(1.0));
    let job = app.call(Method::GET, &location(&headers), None).await.1;
    assert_eq!(sample(&text, "lora_files_job_bytes_written_total", &[]), job["job"]["bytes"].as_f64());
    assert!(job["job"]["bytes"].as_f64().unwrap() > 0.0);
    assert!(!text.contains(file_id), "no ids in labels");
    app.stop().await;

    let off = TestApp::spawn(t, 0, |_| {}).await;
    assert_eq!(off.client.get(format!("{}/metrics", off.base)).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}

on_both_backends!(
    respond_async_answers_202_and_the_events_end_in_succeeded,
    a_create_through_the_queue_answers_201_as_before,
    past_the_sync_wait_the_answer_is_202,
    cancelling_a_queued_create_leaves_nothing_behind,
    jobs_are_listed_in_pages_and_bad_parameters_name_the_field,
    a_failed_create_leaves_the_file_failed_and_a_failed_add_the_previous_version,
    the_openapi_document_describes_the_job_routes,
    metrics_count_requests_by_route_and_jobs_by_kind_and_state,
);
