//! Issue 16, finding 19: CPU-heavy work (argon2, parsing and checking an
//! import, enrichment, rendering a create's conversations) runs off the
//! async workers, so `/api/health` and reads keep answering under it.
//!
//! Not a timed test: the server runs on a current-thread runtime, so every
//! piece of async work shares this test's thread, and the test compares CPU
//! time — the work this thread did against the work the whole process did
//! while a heavy request ran. CPU time does not grow when a loaded machine
//! makes the request wait, so the share is the same on any machine. Both
//! backends run in this one test (one test in the binary), so no other
//! test's threads add to the process's CPU time.

use std::time::Duration;

use lora_files_server::{AppState, Settings};
use lora_files_store::testing::{fixture, Backend, TestStore};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const SECRET: &[u8] = b"a test secret that is long enough for HS256";

/// The async thread may do at most this share of the CPU work of sign-ins
/// (HTTP, SQL, the token): argon2 is nearly all of it (inline it was 97 %,
/// off the workers 2–4 %). Imports, enrichment and a create of fixture-sized
/// conversations cost milliseconds of CPU against the same overhead, so
/// their share says little; it is printed, and for them the test asks only
/// that `/api/health` answered while they ran.
const MOST_ON_THE_ASYNC_THREAD: f64 = 0.35;

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

/// Runs `request` while `/api/health` is asked up to [`HEALTH_CHECKS`]
/// times, and answers the request's result, how many health checks answered
/// 200 before it did, and the share of the process's CPU time the async
/// thread used meanwhile.
async fn under_health_checks<T>(
    client: &Client,
    base: &str,
    request: impl std::future::Future<Output = T>,
) -> (T, usize, f64) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (thread_before, process_before) = cpu_now();
    let done = AtomicBool::new(false);
    let health = async {
        let mut answered = 0;
        while answered < HEALTH_CHECKS && !done.load(Ordering::SeqCst) {
            let response = client
                .get(format!("{base}/api/health"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            if !done.load(Ordering::SeqCst) {
                answered += 1;
            }
        }
        answered
    };
    let request = async {
        let result = request.await;
        done.store(true, Ordering::SeqCst);
        result
    };
    let (result, answered) = tokio::join!(request, health);
    let (thread_after, process_after) = cpu_now();
    let (thread, process) = (thread_after - thread_before, process_after - process_before);
    (
        result,
        answered,
        thread.as_secs_f64() / process.as_secs_f64().max(1e-9),
    )
}

async fn heavy_requests_leave_the_async_thread_free(backend: Backend) {
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
    let mut check = |what: &str, answered: usize, share: f64, strict: bool| {
        eprintln!("{backend:?} {what}: {answered} health answers during it, {:.0} % of its CPU on the async thread", share * 100.0);
        assert!(
            answered > 0,
            "{backend:?} {what}: /api/health never answered while it ran"
        );
        shares.push(format!("{what}: {:.0} %", share * 100.0));
        assert!(
            !strict || share < MOST_ON_THE_ASYNC_THREAD,
            "{backend:?} {what}: {:.0} % of its CPU ran on the async thread ({shares:?})",
            share * 100.0
        );
    };

    // argon2, 16 sign-ins at once.
    let sign_in = || {
        client
            .post(format!("{base}/api/auth/token"))
            .json(&json!({"email": "alice@example.com", "password": "correct horse battery"}))
            .send()
    };
    let (answers, answered, share) = under_health_checks(
        &client,
        &base,
        futures::future::join_all((0..16).map(|_| sign_in())),
    )
    .await;
    assert!(answers
        .into_iter()
        .all(|a| a.unwrap().status() == StatusCode::OK));
    check("16 sign-ins", answered, share, true);

    // Parsing and checking one large enriched file at import: the largest
    // fixture with its training pairs repeated under new pair ids.
    let text = std::fs::read_to_string(fixture("enriched/enriched-1.json")).unwrap();
    let imports = (0..12).map(|_| {
        let id = uuid::Uuid::new_v4().to_string();
        client
            .post(format!("{base}/api/conversations"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(text.replace("2e6e3685-eb74-46c9-b11d-13a3e162a4b5", &id))
            .send()
    });
    let (answers, answered, share) =
        under_health_checks(&client, &base, futures::future::join_all(imports)).await;
    for answer in answers {
        let answer = answer.unwrap();
        assert_eq!(
            answer.status(),
            StatusCode::CREATED,
            "{}",
            answer.text().await.unwrap()
        );
    }
    check("12 imports of a 128 KB file", answered, share, false);

    // Enrichment of raw output.
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
    let (answer, answered, share) = under_health_checks(&client, &base, enrich).await;
    let answer = answer.unwrap();
    assert_eq!(
        answer.status(),
        StatusCode::OK,
        "{}",
        answer.text().await.unwrap()
    );
    check("enriching 8 conversations", answered, share, false);

    // Reading and rendering a create's conversations.
    let ids = t.import_copies(&t.alice, 200).await;
    let create = client
        .post(format!("{base}/api/training-files"))
        .bearer_auth(&token)
        .json(&json!({"name": "heavy", "conversation_ids": ids}))
        .send();
    let (answer, answered, share) = under_health_checks(&client, &base, create).await;
    let answer = answer.unwrap();
    let status = answer.status();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    check("a create of 200 conversations", answered, share, false);
    drop(check);
    eprintln!("{backend:?}: {shares:?}");
    t.cleanup().await;
}

#[test]
fn heavy_requests_leave_the_async_thread_free_on_both_backends() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(heavy_requests_leave_the_async_thread_free(Backend::Sqlite));
    runtime.block_on(heavy_requests_leave_the_async_thread_free(
        Backend::Postgres,
    ));
}
