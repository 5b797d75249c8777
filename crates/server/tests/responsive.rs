//! Issue 16, finding 19: CPU-heavy work (argon2, parsing and checking an
//! import, enrichment, rendering a create's conversations) runs off the
//! async workers, so `/api/health` and reads keep answering under it.
//!
//! Not a timed test: the server runs on a current-thread runtime, so every
//! piece of its async work shares this test's thread, and the test compares
//! CPU time — the work this thread did against the work the whole process
//! did while a heavy request ran. The HTTP client runs on a runtime of its
//! own (another thread), so that sending a request and reading its answer do
//! not count as the server's. CPU time does not grow when a loaded machine
//! makes the request wait, so the share is the same on any machine. Both
//! backends run in this one test (one test in the binary), so no other
//! test's threads add to the process's CPU time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lora_files_server::{AppState, Settings};
use lora_files_store::conversations::ImportRequest;
use lora_files_store::testing::{fixture, Backend, TestStore};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const SECRET: &[u8] = b"a test secret that is long enough for HS256";

/// The async thread may do at most this share of the CPU work of 16
/// sign-ins or of a large create; the rest must run on the blocking pool.
/// Measured in a debug build on 2 cores, off the workers / with the work
/// inline on the async thread: sign-ins (argon2) 2–4 % / 97 %; a create of
/// 60 copies of the largest fixture (rendering, and counting the exports'
/// tokens) 4–11 % / 95 %. The rest is HTTP, SQL and storage calls.
const MOST_ON_THE_ASYNC_THREAD: f64 = 0.35;

/// The same for 12 imports of a 1 MB file at once (parsing and checking):
/// 31–38 % off the workers / 75–87 % inline. Reading 12 MB of request
/// bodies, storing them and the SQL are a third of it.
const MOST_OF_IMPORTS_ON_THE_ASYNC_THREAD: f64 = 0.55;

fn cpu(clock: libc::clockid_t) -> Duration {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid timespec for the call to fill.
    assert_eq!(unsafe { libc::clock_gettime(clock, &mut time) }, 0);
    Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
}

/// CPU time of this thread (the runtime's only async worker) and of the whole process.
fn cpu_now() -> (Duration, Duration) {
    (
        cpu(libc::CLOCK_THREAD_CPUTIME_ID),
        cpu(libc::CLOCK_PROCESS_CPUTIME_ID),
    )
}

/// Health checks asked while a heavy request runs: a few, so that their
/// own CPU time stays out of the comparison (a loaded machine would let an
/// endless loop of them run longer and weigh more).
const HEALTH_CHECKS: usize = 3;

/// Runs `request` on the client runtime `clients` while `/api/health` is
/// asked up to [`HEALTH_CHECKS`] times, and answers the request's result,
/// how many health checks answered 200 before it did, and the share of the
/// process's CPU time this thread (the server's) used meanwhile.
async fn under_health_checks<T: Send + 'static>(
    clients: &tokio::runtime::Handle,
    client: &Client,
    base: &str,
    request: impl std::future::Future<Output = T> + Send + 'static,
) -> (T, usize, f64) {
    let (thread_before, process_before) = cpu_now();
    let done = Arc::new(AtomicBool::new(false));
    let health = clients.spawn({
        let (client, url, done) = (client.clone(), format!("{base}/api/health"), done.clone());
        async move {
            let mut answered = 0;
            while answered < HEALTH_CHECKS && !done.load(Ordering::SeqCst) {
                let response = client.get(&url).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                if !done.load(Ordering::SeqCst) {
                    answered += 1;
                }
            }
            answered
        }
    });
    let result = clients
        .spawn(async move {
            let result = request.await;
            done.store(true, Ordering::SeqCst);
            result
        })
        .await
        .unwrap();
    let answered = health.await.unwrap();
    let (thread_after, process_after) = cpu_now();
    let (thread, process) = (thread_after - thread_before, process_after - process_before);
    (
        result,
        answered,
        thread.as_secs_f64() / process.as_secs_f64().max(1e-9),
    )
}

/// The largest enriched fixture, and its conversation id.
const LARGEST: (&str, &str) = (
    "enriched/enriched-1.json",
    "2e6e3685-eb74-46c9-b11d-13a3e162a4b5",
);

/// Imports `count` copies of the largest fixture under new ids, straight
/// into the store; returns their ids.
async fn import_largest_copies(t: &TestStore, count: usize) -> Vec<String> {
    let text = std::fs::read_to_string(fixture(LARGEST.0)).unwrap();
    let (mut ids, mut requests) = (Vec::new(), Vec::new());
    for i in 0..count {
        let id = uuid::Uuid::new_v4().to_string();
        let bytes = bytes::Bytes::from(text.replace(LARGEST.1, &id));
        requests.push(ImportRequest::new(format!("largest-{i}.json"), bytes));
        ids.push(id);
    }
    for answer in t
        .store
        .conversations()
        .import_many(&t.alice, requests)
        .await
    {
        answer.unwrap();
    }
    ids
}

async fn heavy_requests_leave_the_async_thread_free(
    backend: Backend,
    clients: tokio::runtime::Handle,
) {
    let t = TestStore::new(backend).await;
    t.load_scaffolding().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut settings = Settings::new();
    // Sixteen sign-ins at once from one address are the test's, not an attack.
    settings.login_attempts_per_account = std::num::NonZeroU32::new(1000).unwrap();
    settings.login_attempts_per_address = std::num::NonZeroU32::new(1000).unwrap();
    let state = AppState::new(t.serving(&base, SECRET).await, SECRET, settings);
    let app = lora_files_server::app(state.clone());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let token = state.tokens.issue(&t.alice, None, Duration::from_secs(600));
    let client = Client::new();
    let mut shares = Vec::new();
    let mut check = |what: &str, answered: usize, share: f64, most: Option<f64>| {
        eprintln!("{backend:?} {what}: {answered} health answers during it, {:.0} % of its CPU on the async thread", share * 100.0);
        assert!(
            answered > 0,
            "{backend:?} {what}: /api/health never answered while it ran"
        );
        shares.push(format!("{what}: {:.0} %", share * 100.0));
        assert!(
            most.is_none_or(|most| share < most),
            "{backend:?} {what}: {:.0} % of its CPU ran on the async thread ({shares:?})",
            share * 100.0
        );
    };

    // argon2, 16 sign-ins at once.
    let sign_ins = (0..16).map(|_| {
        client
            .post(format!("{base}/api/auth/token"))
            .json(&json!({"email": "alice@example.com", "password": "correct horse battery"}))
            .send()
    });
    let (answers, answered, share) = under_health_checks(
        &clients,
        &client,
        &base,
        futures::future::join_all(sign_ins),
    )
    .await;
    assert!(answers
        .into_iter()
        .all(|a| a.unwrap().status() == StatusCode::OK));
    check(
        "16 sign-ins",
        answered,
        share,
        Some(MOST_ON_THE_ASYNC_THREAD),
    );

    // Parsing and checking large enriched files at import: the largest
    // fixture with each pair's system prompt 200 times as long (1 MB).
    let text = {
        let original = std::fs::read_to_string(fixture(LARGEST.0)).unwrap();
        let mut value: Value = serde_json::from_str(&original).unwrap();
        for pair in value["training_pairs"].as_array_mut().unwrap() {
            let prompt = pair["system_prompt"].as_str().unwrap().to_owned();
            pair["system_prompt"] = Value::String(vec![prompt; 200].join(" "));
        }
        serde_json::to_string_pretty(&value).unwrap()
    };
    let imports = (0..12).map(|_| {
        let id = uuid::Uuid::new_v4().to_string();
        client
            .post(format!("{base}/api/conversations"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(text.replace(LARGEST.1, &id))
            .send()
    });
    let (answers, answered, share) =
        under_health_checks(&clients, &client, &base, futures::future::join_all(imports)).await;
    for answer in answers {
        let answer = answer.unwrap();
        assert_eq!(
            answer.status(),
            StatusCode::CREATED,
            "{}",
            answer.text().await.unwrap()
        );
    }
    check(
        "12 imports of a 1 MB file",
        answered,
        share,
        Some(MOST_OF_IMPORTS_ON_THE_ASYNC_THREAD),
    );

    // Enrichment of raw output: milliseconds of CPU per conversation against
    // the same HTTP and SQL, so its share says little; it is printed, and
    // the test asks only that `/api/health` answered while it ran.
    let raw = std::fs::read(fixture("raw/single-convo-file-3-raw.json")).unwrap();
    let mut raw_ids = Vec::new();
    for _ in 0..8 {
        let id = uuid::Uuid::new_v4().to_string();
        let path = format!("{base}/api/conversations?conversation_id={id}&persona_key=pragmatic_optimist&emotional_arc_key=shame_to_acceptance&topic_key=grandparent_529");
        let response = client
            .post(path)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(raw.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{}",
            response.text().await.unwrap()
        );
        raw_ids.push(id);
    }
    let enrich = client
        .post(format!("{base}/api/conversations/enrich"))
        .bearer_auth(&token)
        .json(&json!({"conversation_ids": raw_ids}))
        .send();
    let (answer, answered, share) = under_health_checks(&clients, &client, &base, enrich).await;
    let answer = answer.unwrap();
    assert_eq!(
        answer.status(),
        StatusCode::OK,
        "{}",
        answer.text().await.unwrap()
    );
    check("enriching 8 conversations", answered, share, None);

    // Reading, rendering and counting a create's conversations: 60 copies
    // of the largest fixture (8 MB), few enough that the create counts
    // their export tokens before it answers.
    let ids = import_largest_copies(&t, 60).await;
    let create = client
        .post(format!("{base}/api/training-files"))
        .bearer_auth(&token)
        .json(&json!({"name": "heavy", "conversation_ids": ids}))
        .send();
    let (answer, answered, share) = under_health_checks(&clients, &client, &base, create).await;
    let answer = answer.unwrap();
    let status = answer.status();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["trainingFile"]["conversation_count"], 60);
    check(
        "a create of 60 large conversations",
        answered,
        share,
        Some(MOST_ON_THE_ASYNC_THREAD),
    );
    eprintln!("{backend:?}: {shares:?}");
    t.cleanup().await;
}

#[test]
fn heavy_requests_leave_the_async_thread_free_on_both_backends() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The client's own thread.
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        runtime.block_on(heavy_requests_leave_the_async_thread_free(
            backend,
            clients.handle().clone(),
        ));
    }
}
