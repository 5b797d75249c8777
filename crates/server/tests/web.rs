//! The web UI over HTTP: sign in with a form, then the pages and forms a
//! browser would use (SQLite and PostgreSQL). Every value is HTML-escaped.

use std::time::Duration;

use lora_files_server::{AppState, Settings};
use lora_files_store::on_both_backends;
use lora_files_store::testing::{fixture, TestStore};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{redirect, Client, Response, StatusCode};

const SECRET: &[u8] = b"a test secret that is long enough for HS256";

struct Browser {
    base: String,
    client: Client,
    cookie: Option<String>,
}

impl Browser {
    async fn open(t: &TestStore) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState::new(t.serving(&base, SECRET).await, SECRET, Settings::new());
        tokio::spawn(async move { axum::serve(listener, lora_files_server::app(state)).await });
        let client = Client::builder().redirect(redirect::Policy::none()).timeout(Duration::from_secs(30)).build().unwrap();
        Self { base, client, cookie: None }
    }

    async fn get(&self, path: &str) -> Response {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        let mut request = self.client.post(format!("{}{path}", self.base)).form(form);
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        response.text().await.unwrap()
    }

    async fn sign_in(&mut self) {
        let response = self.post("/login", &[("email", "alice@example.com"), ("password", "correct horse battery")]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        self.cookie = Some(cookie.split(';').next().unwrap().to_owned());
    }
}

fn location(response: &Response) -> String {
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

async fn signing_in_and_out(t: &TestStore) {
    let mut browser = Browser::open(t).await;
    assert!(browser.page("/").await.contains("Sign in"));
    let pages = ["/training-files", "/conversations"];
    for path in pages {
        let response = browser.get(path).await;
        assert_eq!((response.status(), location(&response)), (StatusCode::SEE_OTHER, "/".to_owned()), "{path} needs a session");
    }
    let wrong = browser.post("/login", &[("email", "alice@example.com"), ("password", "nope")]).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.unwrap().contains("Wrong email or password."));

    browser.sign_in().await;
    assert_eq!(location(&browser.get("/").await), "/training-files");
    let out = browser.post("/logout", &[]).await;
    assert!(out.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
}

async fn files_are_created_added_to_and_downloaded(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 3).await;
    let mut browser = Browser::open(t).await;
    browser.sign_in().await;
    assert!(browser.page("/training-files").await.contains("No training files yet."));

    let created = browser.post("/training-files", &[("name", "<b>Batch</b> & co"), ("description", ""), ("conversation_ids", &format!("{}\n{}", ids[0], ids[1]))]).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let file_page = location(&created);
    let list = browser.page("/training-files").await;
    assert!(list.contains("&lt;b&gt;Batch&lt;/b&gt; &amp; co") && !list.contains("<b>Batch"), "names are escaped");

    let added = browser.post(&format!("{file_page}/add"), &[("conversation_ids", &ids[2])]).await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    let page = browser.page(&file_page).await;
    assert!(page.contains("Version 2 · 3 conversations"), "{page}");
    let again = browser.post(&format!("{file_page}/add"), &[("conversation_ids", &ids[2])]).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(again.text().await.unwrap().contains(&format!("{} is already in the file", ids[2])));

    let download = browser.get(&format!("{file_page}/download?format=jsonl&version=1")).await;
    assert_eq!(download.status(), StatusCode::SEE_OTHER);
    let bytes = browser.client.get(location(&download)).send().await.unwrap();
    assert!(bytes.headers()["content-disposition"].to_str().unwrap().contains("-v1.jsonl"));

    let archived = browser.post(&format!("{file_page}/status"), &[("status", "archived")]).await;
    assert_eq!(archived.status(), StatusCode::SEE_OTHER);
    assert!(browser.page(&file_page).await.contains("Unarchive"));
    let renamed = browser.post(&format!("{file_page}/rename"), &[("name", "Renamed")]).await;
    assert_eq!(renamed.status(), StatusCode::SEE_OTHER);
    assert!(browser.page(&file_page).await.contains("<h1>Renamed</h1>"));
    let unconfirmed = browser.post(&format!("{file_page}/delete"), &[("confirm", "renamed")]).await;
    assert_eq!(unconfirmed.status(), StatusCode::BAD_REQUEST);
    let refusal = unconfirmed.text().await.unwrap();
    assert!(refusal.contains("confirm: type the file's name, &quot;Renamed&quot;, to delete it"), "{refusal}");
    assert_eq!(browser.get(&file_page).await.status(), StatusCode::OK, "still there");
    let deleted = browser.post(&format!("{file_page}/delete"), &[("confirm", "Renamed")]).await;
    assert_eq!((deleted.status(), location(&deleted)), (StatusCode::SEE_OTHER, "/training-files".to_owned()));
    assert_eq!(browser.get(&file_page).await.status(), StatusCode::NOT_FOUND);
    let other = browser.get("/training-files/00000000-0000-4000-8000-000000000000").await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let bad = browser.post("/training-files", &[("name", "x"), ("conversation_ids", "not-an-id")]).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("conversation_ids[0]"));
}

async fn raw_conversations_are_imported_and_enriched(t: &TestStore) {
    t.load_scaffolding().await;
    let mut browser = Browser::open(t).await;
    browser.sign_in().await;
    let page = browser.page("/conversations").await;
    assert!(page.contains("David Chen (pragmatic_optimist)"), "scaffolding choices are offered");

    let raw = std::fs::read_to_string(fixture("raw/single-convo-file-3-raw.json")).unwrap();
    let form = [("text", raw.as_str()), ("persona_key", "pragmatic_optimist"), ("emotional_arc_key", "shame_to_acceptance"), ("topic_key", "grandparent_529"), ("conversation_id", "")];
    let imported = browser.post("/conversations/import", &form).await;
    assert_eq!(imported.status(), StatusCode::SEE_OTHER);
    let conversation = location(&imported);
    assert!(browser.page(&conversation).await.contains("Status <strong>not_started</strong>"));
    let enriched = browser.post(&format!("{conversation}/enrich"), &[]).await;
    assert_eq!(enriched.status(), StatusCode::SEE_OTHER);
    let page = browser.page(&conversation).await;
    assert!(page.contains("Status <strong>completed</strong>") && page.contains("Validation passed"), "{page}");

    let kept = browser.post("/conversations/import", &[("text", "{\"turns\": [")]).await;
    let page = browser.page(&location(&kept)).await;
    assert!(page.contains("Needs review — the text is not JSON"), "{page}");
    assert!(browser.page("/conversations?enrichment_status=completed").await.contains(&conversation["/conversations/".len()..]));
}

on_both_backends!(signing_in_and_out, files_are_created_added_to_and_downloaded, raw_conversations_are_imported_and_enriched);
