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
        Self::open_with(t, Settings::new()).await
    }

    async fn open_with(t: &TestStore, settings: Settings) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState::new(t.serving(&base, SECRET).await, SECRET, settings);
        tokio::spawn(async move { axum::serve(listener, lora_files_server::app(state)).await });
        let client = Client::builder()
            .redirect(redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            base,
            client,
            cookie: None,
        }
    }

    async fn get(&self, path: &str) -> Response {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.post_with(path, form, &[]).await
    }

    /// A form post with extra headers (`Origin`, `Sec-Fetch-Site`).
    async fn post_with(
        &self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = self.client.post(format!("{}{path}", self.base)).form(form);
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        response.text().await.unwrap()
    }

    async fn sign_in(&mut self) {
        let response = self
            .post(
                "/login",
                &[
                    ("email", "alice@example.com"),
                    ("password", "correct horse battery"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
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
        assert_eq!(
            (response.status(), location(&response)),
            (StatusCode::SEE_OTHER, "/".to_owned()),
            "{path} needs a session"
        );
    }
    let wrong = browser
        .post(
            "/login",
            &[("email", "alice@example.com"), ("password", "nope")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("Wrong email or password."));

    browser.sign_in().await;
    assert_eq!(location(&browser.get("/").await), "/conversations");
    let out = browser.post("/logout", &[]).await;
    assert!(out.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
}

async fn files_are_created_added_to_and_downloaded(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 3).await;
    let mut browser = Browser::open(t).await;
    browser.sign_in().await;
    assert!(browser
        .page("/training-files")
        .await
        .contains("No training files yet. Go to <a href=\"/conversations\">Conversations</a>"));

    let created = browser
        .post(
            "/training-files",
            &[
                ("name", "<b>Batch</b> & co"),
                ("description", ""),
                ("conversation_ids", &format!("{}\n{}", ids[0], ids[1])),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let file_page = location(&created).split('?').next().unwrap().to_owned();
    let list = browser.page("/training-files").await;
    assert!(
        list.contains("&lt;b&gt;Batch&lt;/b&gt; &amp; co") && !list.contains("<b>Batch"),
        "names are escaped"
    );

    let added = browser
        .post(
            &format!("{file_page}/add"),
            &[("conversation_ids", &ids[2])],
        )
        .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    let page = browser
        .page(&format!(
            "{}?done=added",
            file_page.split('?').next().unwrap()
        ))
        .await;
    assert!(
        page.contains("Added: version 2 holds 3 conversations."),
        "{page}"
    );
    let again = browser
        .post(
            &format!("{file_page}/add"),
            &[("conversation_ids", &ids[2])],
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let refusal = again.text().await.unwrap();
    assert!(
        refusal.contains("1 conversation is already in the training file")
            && refusal.contains(&format!("title=\"{}\"", ids[2])),
        "{refusal}"
    );

    let download = browser
        .get(&format!("{file_page}/download?format=jsonl&version=1"))
        .await;
    assert_eq!(download.status(), StatusCode::SEE_OTHER);
    let bytes = browser
        .client
        .get(location(&download))
        .send()
        .await
        .unwrap();
    assert!(bytes.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("-v1.jsonl"));

    let archived = browser
        .post(&format!("{file_page}/status"), &[("status", "archived")])
        .await;
    assert_eq!(archived.status(), StatusCode::SEE_OTHER);
    assert!(browser.page(&file_page).await.contains("Unarchive"));
    let renamed = browser
        .post(&format!("{file_page}/rename"), &[("name", "Renamed")])
        .await;
    assert_eq!(renamed.status(), StatusCode::SEE_OTHER);
    assert!(browser.page(&file_page).await.contains("<h1>Renamed</h1>"));
    let two = browser
        .post(&format!("{file_page}/status"), &[("status", "active")])
        .await;
    assert_eq!(two.status(), StatusCode::SEE_OTHER);
    let removed = browser
        .post(
            &format!("{file_page}/remove"),
            &[("pick", &ids[0]), ("pick", &ids[2])],
        )
        .await;
    assert_eq!(
        (removed.status(), location(&removed)),
        (StatusCode::SEE_OTHER, format!("{file_page}?done=removed"))
    );
    assert!(
        browser
            .page(&location(&removed))
            .await
            .contains("Removed: version 4 holds 1 conversation."),
        "two members removed at once"
    );
    let unconfirmed = browser
        .post(&format!("{file_page}/delete"), &[("confirm", "renamed")])
        .await;
    assert_eq!(unconfirmed.status(), StatusCode::BAD_REQUEST);
    let refusal = unconfirmed.text().await.unwrap();
    assert!(
        refusal
            .contains("Confirm: type the file's name, &quot;Renamed&quot;, exactly to delete it."),
        "{refusal}"
    );
    assert_eq!(
        browser.get(&file_page).await.status(),
        StatusCode::OK,
        "still there"
    );
    let deleted = browser
        .post(&format!("{file_page}/delete"), &[("confirm", "Renamed")])
        .await;
    assert_eq!(
        (deleted.status(), location(&deleted)),
        (
            StatusCode::SEE_OTHER,
            "/training-files?done=deleted".to_owned()
        )
    );
    assert_eq!(
        browser.get(&file_page).await.status(),
        StatusCode::NOT_FOUND
    );
    let other = browser
        .get("/training-files/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let bad = browser
        .post(
            "/training-files",
            &[("name", "x"), ("conversation_ids", "not-an-id")],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad
        .text()
        .await
        .unwrap()
        .contains("Conversation_ids[0]: &quot;not-an-id&quot; is not a UUID"));
}

async fn raw_conversations_are_imported_and_enriched(t: &TestStore) {
    t.load_scaffolding().await;
    let mut browser = Browser::open(t).await;
    browser.sign_in().await;
    let page = browser.page("/conversations").await;
    assert!(
        page.contains("David Chen (pragmatic_optimist)"),
        "scaffolding choices are offered"
    );
    assert!(page.contains("No enriched conversations yet."), "{page}");

    let raw = std::fs::read_to_string(fixture("raw/single-convo-file-3-raw.json")).unwrap();
    let form = [
        ("text", raw.as_str()),
        ("persona_key", "pragmatic_optimist"),
        ("emotional_arc_key", "shame_to_acceptance"),
        ("topic_key", "grandparent_529"),
        ("conversation_id", ""),
    ];
    let imported = browser.post("/conversations/import", &form).await;
    assert_eq!(imported.status(), StatusCode::SEE_OTHER);
    let conversation = location(&imported).split('?').next().unwrap().to_owned();
    let page = browser.page(&location(&imported)).await;
    assert!(
        page.contains("<dd>not enriched yet</dd>") && page.contains("Imported. Enrich it"),
        "{page}"
    );
    let enriched = browser.post(&format!("{conversation}/enrich"), &[]).await;
    assert_eq!(enriched.status(), StatusCode::SEE_OTHER);
    let page = browser.page(&location(&enriched)).await;
    assert!(
        page.contains("<dd>enriched</dd>")
            && page.contains("Validation passed")
            && page.contains("Enriched: it can now go"),
        "{page}"
    );
    assert!(
        page.contains("Assistant · training target") && page.contains("Download enriched JSON"),
        "the pairs are shown as a chat"
    );
    let json = browser.get(&format!("{conversation}/enriched.json")).await;
    assert_eq!(json.status(), StatusCode::OK);
    serde_json::from_slice::<serde_json::Value>(&json.bytes().await.unwrap())
        .expect("the enriched file is JSON");

    let kept = browser
        .post("/conversations/import", &[("text", "{\"turns\": [")])
        .await;
    let page = browser.page(&location(&kept)).await;
    assert!(
        page.contains("needs review: the imported text is not JSON")
            && !page.contains(">Enrich</button>"),
        "{page}"
    );
    assert!(browser
        .page("/conversations?enrichment_status=completed")
        .await
        .contains(&conversation["/conversations/".len()..]));
}

/// Finding 16.6: a form from another origin changes nothing and signs no one in.
async fn cross_origin_forms_are_refused(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 1).await;
    let mut browser = Browser::open(t).await;
    let evil = [("origin", "https://evil.example")];
    let foreign_login = browser
        .post_with(
            "/login",
            &[
                ("email", "alice@example.com"),
                ("password", "correct horse battery"),
            ],
            &evil,
        )
        .await;
    assert_eq!(foreign_login.status(), StatusCode::FORBIDDEN);
    assert!(
        foreign_login.headers().get(SET_COOKIE).is_none(),
        "no session for a foreign form"
    );
    assert!(foreign_login
        .text()
        .await
        .unwrap()
        .contains("This form was not sent from a lora-files page"));
    browser.sign_in().await;
    let created = browser
        .post(
            "/training-files",
            &[("name", "Mine"), ("conversation_ids", &ids[0])],
        )
        .await;
    let file_page = location(&created).split('?').next().unwrap().to_owned();

    for headers in [
        &evil[..],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[("origin", "null")],
    ] {
        let renamed = browser
            .post_with(
                &format!("{file_page}/rename"),
                &[("name", "Hijacked")],
                headers,
            )
            .await;
        assert_eq!(renamed.status(), StatusCode::FORBIDDEN, "{headers:?}");
    }
    let api = browser
        .post_with(&format!("/api/conversations/{}/enrich", ids[0]), &[], &evil)
        .await;
    assert_eq!(
        api.status(),
        StatusCode::FORBIDDEN,
        "the API refuses a foreign request riding on the session cookie"
    );
    assert!(
        browser.page(&file_page).await.contains("<h1>Mine</h1>"),
        "nothing changed"
    );

    let own = browser.base.clone();
    let renamed = browser
        .post_with(
            &format!("{file_page}/rename"),
            &[("name", "Renamed")],
            &[("origin", &own), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(
        renamed.status(),
        StatusCode::SEE_OTHER,
        "our own pages' forms work"
    );
}

/// Finding 16.6: every answer forbids framing, sniffing and foreign scripts.
async fn pages_send_security_headers(t: &TestStore) {
    let browser = Browser::open(t).await;
    for path in ["/", "/static/app.css", "/api/health", "/nowhere"] {
        let response = browser.get(path).await;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert!(
            header("content-security-policy").contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert!(
            header("content-security-policy").contains("script-src 'self'"),
            "{path}"
        );
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "same-origin", "{path}");
    }
}

/// Finding 16.6: a bad form body is the UI's own page, not axum's plain text;
/// the web form keeps `--max-ids-per-request`; a bad status filter is a 400.
async fn form_errors_are_pages(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 3).await;
    let settings = Settings {
        max_ids_per_request: 2,
        max_body_bytes: 64 * 1024,
        ..Settings::new()
    };
    let mut browser = Browser::open_with(t, settings).await;
    browser.sign_in().await;
    let html = |response: &Response| {
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    };

    let not_a_form = browser
        .client
        .post(format!("{}/training-files", browser.base))
        .header(COOKIE, browser.cookie.clone().unwrap())
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(not_a_form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(html(&not_a_form));
    let big = "x".repeat(100 * 1024);
    let too_large = browser
        .post("/conversations/import", &[("text", &big)])
        .await;
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        html(&too_large)
            && too_large
                .text()
                .await
                .unwrap()
                .contains("larger than this server accepts")
    );
    let missing = browser
        .post("/training-files", &[("conversation_ids", &ids[0])])
        .await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert!(
        html(&missing)
            && missing
                .text()
                .await
                .unwrap()
                .contains("Name: a name is required.")
    );

    let many = ids.join("\n");
    let refused = browser
        .post(
            "/training-files",
            &[("name", "Too many"), ("conversation_ids", &many)],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("names 3 conversations; at most 2 per request"),
        "{text}"
    );
    let selection: Vec<(&str, &str)> = ids
        .iter()
        .map(|id| ("pick", id.as_str()))
        .chain([("name", "Too many"), ("do", "create")])
        .collect();
    let refused = browser.post("/conversations/selection", &selection).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("at most 2 per request"));

    let bogus = browser.get("/training-files?status=bogus").await;
    assert_eq!(bogus.status(), StatusCode::BAD_REQUEST);
    assert!(bogus
        .text()
        .await
        .unwrap()
        .contains("is not a status to list"));
    let bogus = browser.get("/conversations?status=bogus").await;
    assert_eq!(bogus.status(), StatusCode::BAD_REQUEST);
}

/// Browsers get pages for unknown routes and `GET /login`; programs and `/api` get JSON.
async fn unknown_routes_answer_in_kind(t: &TestStore) {
    let browser = Browser::open(t).await;
    let page = |path: &'static str| {
        browser
            .client
            .get(format!("{}{path}", browser.base))
            .header("accept", "text/html,application/xhtml+xml")
            .send()
    };
    let missing = page("/nowhere").await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing
        .text()
        .await
        .unwrap()
        .contains("There is no such page"));
    let api = page("/api/nowhere").await.unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        api.json::<serde_json::Value>().await.unwrap()["code"],
        "not_found"
    );
    assert_eq!(
        browser
            .get("/nowhere")
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap()["code"],
        "not_found"
    );
    assert!(browser.page("/login").await.contains("Sign in"));
    let docs = browser.page("/api/docs").await;
    assert!(
        docs.contains("<code>POST /api/training-files</code>")
            && docs.contains("id=\"schema-ErrorBody\""),
        "the API reference is rendered"
    );
}

/// The selector: a selection carried across pages and filters creates a file;
/// adding it again names each duplicate by short id and title.
async fn conversations_are_selected_across_pages(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 52).await;
    let mut browser = Browser::open(t).await;
    browser.sign_in().await;
    let first = browser.page("/conversations").await;
    assert!(
        first.contains("52 conversations match these filters.") && first.contains("Next page"),
        "{first}"
    );
    assert!(first.contains("0 conversations selected"));
    // Newest first: the first page shows ids[51]..ids[2]; one is ticked there, one on the next page.
    let next_cursor = first
        .split("name=\"cursor\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let second = browser
        .get(&format!(
            "/conversations?pick={}&cursor={next_cursor}",
            ids[40]
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        second.contains("1 conversation selected") && second.contains(&ids[0][..8]),
        "{second}"
    );
    let carried = second
        .split("name=\"sel\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        carried,
        ids[40].replace('-', ""),
        "the first page's tick is carried"
    );
    let form = [
        ("sel", carried.as_str()),
        ("pick", ids[0].as_str()),
        ("name", "Picked"),
        ("description", ""),
        ("do", "create"),
    ];
    let created = browser.post("/conversations/selection", &form).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let file_page = location(&created);
    let page = browser.page(&file_page).await;
    assert!(
        page.contains("Created Picked with 2 conversations."),
        "{page}"
    );
    let file_id = file_page
        .trim_start_matches("/training-files/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();

    let all = browser
        .get("/conversations?act=all")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        all.contains("52 conversations selected"),
        "select all matching"
    );
    let form = [
        ("pick", ids[0].as_str()),
        ("pick", ids[40].as_str()),
        ("pick", ids[5].as_str()),
        ("file", file_id.as_str()),
        ("do", "add"),
    ];
    let duplicate = browser.post("/conversations/selection", &form).await;
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    let text = duplicate.text().await.unwrap();
    assert!(
        text.contains("2 conversations are already in the training file"),
        "{text}"
    );
    assert!(
        text.contains(&format!("title=\"{}\"", ids[0]))
            && text.contains(&format!("title=\"{}\"", ids[40])),
        "each duplicate is named"
    );
    assert!(
        text.contains("3 conversations selected"),
        "the selection is kept"
    );
}

/// A conversation in a file is deleted only when forced, which removes it from the file first.
async fn conversations_are_deleted(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 3).await;
    let mut browser = Browser::open(t).await;
    browser.sign_in().await;
    let created = browser
        .post(
            "/training-files",
            &[
                ("name", "Holder"),
                ("conversation_ids", &format!("{} {}", ids[0], ids[1])),
            ],
        )
        .await;
    let file_page = location(&created).split('?').next().unwrap().to_owned();

    let loose = browser
        .post(&format!("/conversations/{}/delete", ids[2]), &[])
        .await;
    assert_eq!(
        (loose.status(), location(&loose)),
        (
            StatusCode::SEE_OTHER,
            "/conversations?done=deleted".to_owned()
        )
    );
    assert_eq!(
        browser
            .get(&format!("/conversations/{}", ids[2]))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    assert!(browser
        .page(&format!("/conversations/{}", ids[0]))
        .await
        .contains("Also remove it from 1 training file"));
    let refused = browser
        .post(&format!("/conversations/{}/delete", ids[0]), &[])
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("the training file(s) &quot;Holder&quot;"),
        "the refusal names the file"
    );
    assert_eq!(
        browser
            .get(&format!("/conversations/{}", ids[0]))
            .await
            .status(),
        StatusCode::OK,
        "still there"
    );

    let forced = browser
        .post(
            &format!("/conversations/{}/delete", ids[0]),
            &[("force", "yes")],
        )
        .await;
    assert_eq!(forced.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        browser
            .get(&format!("/conversations/{}", ids[0]))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let page = browser.page(&format!("{file_page}?done=removed")).await;
    assert!(
        page.contains("Removed: version 2 holds 1 conversation."),
        "{page}"
    );
}

/// A conversation not enriched yet takes other scaffolding; an enriched one refuses.
async fn scaffolding_is_changed_before_enrichment(t: &TestStore) {
    t.load_scaffolding().await;
    let enriched = t.import_copies(&t.alice, 1).await;
    let mut browser = Browser::open(t).await;
    browser.sign_in().await;
    let raw = std::fs::read_to_string(fixture("raw/single-convo-file-3-raw.json")).unwrap();
    let imported = browser
        .post("/conversations/import", &[("text", raw.as_str())])
        .await;
    let conversation = location(&imported).split('?').next().unwrap().to_owned();
    assert!(browser
        .page(&conversation)
        .await
        .contains("Change scaffolding"));
    let keys = [
        ("persona_key", "pragmatic_optimist"),
        ("emotional_arc_key", "shame_to_acceptance"),
        ("topic_key", "grandparent_529"),
    ];
    let changed = browser
        .post(&format!("{conversation}/scaffolding"), &keys)
        .await;
    assert_eq!(changed.status(), StatusCode::SEE_OTHER);
    let page = browser.page(&location(&changed)).await;
    assert!(
        page.contains("Scaffolding changed") && page.contains("<dd>pragmatic_optimist</dd>"),
        "{page}"
    );
    let unknown = browser
        .post(
            &format!("{conversation}/scaffolding"),
            &[("persona_key", "nobody")],
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    let refused = browser
        .post(
            &format!("/conversations/{}/scaffolding", enriched[0]),
            &keys,
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("its file states its scaffolding"));
    let again = browser
        .post(
            "/conversations/import",
            &[
                ("text", raw.as_str()),
                ("topic_key", "grandparent_529"),
                ("persona_key", "anxious_planner"),
            ],
        )
        .await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    let page = browser.page(&conversation).await;
    assert!(
        page.contains("<dd>anxious_planner</dd>"),
        "the same text again with scaffolding applies it: {page}"
    );
    let enriched = browser.post(&format!("{conversation}/enrich"), &[]).await;
    assert!(
        browser
            .page(&location(&enriched))
            .await
            .contains("<dd>enriched</dd>"),
        "enriched with the chosen scaffolding"
    );
}

/// A file with a job on it shows the job's phase and a bar on its page,
/// with a refresh link; the page's script follows the job's events with the
/// session cookie.
async fn a_files_page_shows_its_running_job(t: &TestStore) {
    let mut browser = Browser::open(t).await;
    browser.sign_in().await;
    let ids = t.import_copies(&t.alice, 2).await;
    let (job, file) = t.store.jobs().enqueue_create(&t.alice, "in the works", None, &ids).await.unwrap();
    let page = browser.page(&format!("/training-files/{}", file.id)).await;
    assert!(page.contains(&format!("data-job=\"{}\"", job.id)), "{page}");
    assert!(page.contains("<span data-job-phase>queued</span>"), "{page}");
    assert!(page.contains("<span data-job-done>0</span> of <span data-job-total>2</span> conversations"), "{page}");
    assert!(page.contains("<progress data-job-bar max=\"2\" value=\"0\">"), "{page}");
    assert!(page.contains(">Refresh</a>"), "{page}");
    // No version yet: nothing to download, no quality range to state.
    assert!(page.contains("Nothing to download yet") && !page.contains("Current version") && !page.contains("/download?"), "{page}");
    assert!(!page.contains("(–––)"), "{page}");
    t.store.jobs().cancel(&t.alice, &job.id).await.unwrap();
    let events = browser.get(&format!("/api/jobs/{}/events", job.id)).await;
    assert_eq!(events.status(), StatusCode::OK);
    let text = events.text().await.unwrap();
    assert!(text.starts_with("event: cancelled\n"), "{text}");
    let script = browser.get("/static/app.js").await.text().await.unwrap();
    assert!(script.contains("new EventSource(\"/api/jobs/\""));
    let policy = browser.get("/").await.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("connect-src 'self'"), "the script may open the event stream: {policy}");
}

/// With workers in the server the form's create is a job: nobody works it
/// here, so after the form's short wait the file's page shows the job.
async fn the_create_form_queues_a_job_when_the_server_has_workers(t: &TestStore) {
    let mut settings = Settings::new();
    settings.job_workers = 1;
    let mut browser = Browser::open_with(t, settings).await;
    browser.sign_in().await;
    let ids = t.import_copies(&t.alice, 2).await;
    let created = browser.post("/training-files", &[("name", "queued by form"), ("conversation_ids", &format!("{}\n{}", ids[0], ids[1]))]).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let file_page = location(&created);
    assert!(!file_page.contains("done="), "not created yet: {file_page}");
    let page = browser.page(&file_page).await;
    assert!(page.contains("data-job=") && page.contains("<span data-job-state>queued</span>"), "{page}");
    let jobs = t.store.jobs().list(&t.alice, Some(lora_files_store::JobState::Queued), None, 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].total, 2);
}

async fn the_login_form_is_throttled_like_the_api(t: &TestStore) {
    let mut settings = Settings::new();
    settings.login_attempts_per_account = std::num::NonZeroU32::new(3).unwrap();
    let mut browser = Browser::open_with(t, settings).await;
    for _ in 0..3 {
        let wrong = browser.post("/login", &[("email", "alice@example.com"), ("password", "nope")]).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    // Over the account's budget even the right password waits, and the page says for how long.
    let throttled = browser.post("/login", &[("email", "alice@example.com"), ("password", "correct horse battery")]).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers().get(SET_COOKIE).is_none(), "no session");
    let retry_after: u64 = throttled.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(throttled.text().await.unwrap().contains("Too many sign-in attempts"));
    // The API shares the budget: the form is no way around it, nor the other way round.
    let api = browser.client.post(format!("{}/api/auth/token", browser.base)).json(&serde_json::json!({"email": "alice@example.com", "password": "correct horse battery"})).send().await.unwrap();
    assert_eq!(api.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another account still signs in.
    let bob = browser.post("/login", &[("email", "bob@example.com"), ("password", "another long secret")]).await;
    assert_eq!(bob.status(), StatusCode::SEE_OTHER);
    browser.cookie = None;
}

async fn pages_answer_for_ids_in_any_case(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 2).await;
    let file = t.store.training_files().create(&t.alice, "cased", None, &ids).await.unwrap();
    let mut browser = Browser::open(t).await;
    browser.sign_in().await;
    let page = browser.page(&format!("/training-files/{}", file.id.to_uppercase())).await;
    assert!(page.contains("cased"), "the file's page, found by its upper-case id");
    let conversation = browser.page(&format!("/conversations/{}", ids[0].to_uppercase())).await;
    assert!(conversation.contains(&ids[0]), "the canonical id is shown");
    let removed = browser.post(&format!("/training-files/{}/remove", file.id.to_uppercase()), &[("pick", ids[1].as_str())]).await;
    assert!(removed.status().is_redirection(), "{}", removed.status());
    assert!(location(&removed).contains(&file.id), "redirects to the canonical id: {}", location(&removed));
    assert_eq!(t.store.training_files().get(&t.alice, &file.id).await.unwrap().conversation_count, 1);
}

async fn a_broken_conversation_is_edited_and_reimported(t: &TestStore) {
    t.load_scaffolding().await;
    let mut browser = Browser::open(t).await;
    browser.sign_in().await;
    let raw = std::fs::read_to_string(fixture("raw/single-convo-file-3-raw.json")).unwrap();
    let form = [
        ("text", &raw[..900]),
        ("persona_key", "pragmatic_optimist"),
        ("emotional_arc_key", "shame_to_acceptance"),
        ("topic_key", "grandparent_529"),
        ("conversation_id", ""),
    ];
    let kept = browser.post("/conversations/import", &form).await;
    assert_eq!(kept.status(), StatusCode::SEE_OTHER);
    let conversation = location(&kept).split('?').next().unwrap().to_owned();
    let page = browser.page(&conversation).await;
    assert!(page.contains("Edit and re-import") && !page.contains(">Enrich</button>"), "{page}");
    let prefilled = maud::html! { (raw[..900]) }.into_string();
    assert!(page.contains(&format!("required>{prefilled}</textarea>")), "the stored text is prefilled: {page}");

    let still_cut = browser.post(&format!("{conversation}/source"), &[("text", &raw[..1000])]).await;
    assert_eq!(still_cut.status(), StatusCode::BAD_REQUEST);
    let page = still_cut.text().await.unwrap();
    assert!(page.contains("Edit and re-import") && page.contains(&maud::html! { (raw[..1000]) }.into_string()), "the edit is kept: {page}");

    let fixed = browser.post(&format!("{conversation}/source"), &[("text", raw.as_str())]).await;
    assert_eq!(fixed.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&fixed), format!("{conversation}?done=replaced"));
    let page = browser.page(&location(&fixed)).await;
    assert!(page.contains("Re-imported from the edited text") && page.contains(">Enrich</button>"), "{page}");
    assert!(!page.contains("Edit and re-import") && !page.contains("needs review"), "{page}");
    assert!(page.contains("<dd>pragmatic_optimist</dd>"), "the chosen scaffolding stays: {page}");
    let enriched = browser.post(&format!("{conversation}/enrich"), &[]).await;
    let page = browser.page(&location(&enriched)).await;
    assert!(page.contains("<dd>enriched</dd>"), "{page}");
    let locked = browser.post(&format!("{conversation}/source"), &[("text", &raw[..900])]).await;
    assert_eq!(locked.status(), StatusCode::CONFLICT);
    assert!(locked.text().await.unwrap().contains("cannot be replaced: it is enriched"));
}

on_both_backends!(
    a_broken_conversation_is_edited_and_reimported,
    a_files_page_shows_its_running_job,
    the_create_form_queues_a_job_when_the_server_has_workers,
    the_login_form_is_throttled_like_the_api,
    pages_answer_for_ids_in_any_case,
    scaffolding_is_changed_before_enrichment,
    conversations_are_deleted,
    signing_in_and_out,
    files_are_created_added_to_and_downloaded,
    raw_conversations_are_imported_and_enriched,
    cross_origin_forms_are_refused,
    pages_send_security_headers,
    form_errors_are_pages,
    unknown_routes_answer_in_kind,
    conversations_are_selected_across_pages,
);
