//! Two `serve` processes on one PostgreSQL catalogue and one storage folder
//! (issue 16, finding 1): concurrent removes and adds alternating between
//! them never answer 5xx, and the file ends consistent on both.

mod common;

use common::{check_consistent, Client, Server};
use lora_files_store::testing::{Backend, TestStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_removes_and_adds_on_two_servers_never_fail_and_end_consistent() {
    let t = TestStore::new(Backend::Postgres).await;
    let ids = t.import_copies(&t.alice, 40).await;
    let (first, second) = (Server::start(&t), Server::start(&t));
    let urls = [first.url.clone(), second.url.clone()];
    let client = Client::login(&urls[0]).await;
    let (status, created) = client.create(&urls[1], "shared", &ids[..20]).await.unwrap();
    assert_eq!(status, 201, "{created}");
    let file = created["trainingFile"]["id"].as_str().unwrap().to_owned();

    // Ten removes of members and ten adds of others, interleaved, each on the other server.
    let changes = (0..20).map(|i| {
        let (client, url, file) = (client.clone(), urls[i % 2].clone(), file.clone());
        let id = if i % 2 == 0 { ids[i / 2].clone() } else { ids[20 + i / 2].clone() };
        tokio::spawn(async move {
            let answer = if i % 2 == 0 { client.remove(&url, &file, &id).await } else { client.add(&url, &file, std::slice::from_ref(&id)).await };
            (i, id, answer.unwrap())
        })
    });
    let mut expected: std::collections::BTreeSet<String> = ids[..20].iter().cloned().collect();
    for change in futures::future::join_all(changes).await {
        let (i, id, (status, body)) = change.unwrap();
        assert_eq!(status, 200, "change {i} ({}) on server {}: {body}", if i % 2 == 0 { "remove" } else { "add" }, i % 2);
        if i % 2 == 0 {
            expected.remove(&id);
        } else {
            expected.insert(id);
        }
    }

    for url in &urls {
        let members: std::collections::BTreeSet<String> = check_consistent(&client, url, &file).await.into_iter().collect();
        assert_eq!(members, expected, "every change landed, seen from {url}");
    }
    // Every version still downloads (no object a version needs was deleted).
    let versions = client.versions(&urls[0], &file).await;
    assert!(versions.len() >= 21, "one version per change at least: {}", versions.len());
    for version in &versions {
        let n = version["version"].as_i64().unwrap();
        for (format, size) in [("json", "json_file_size"), ("jsonl", "jsonl_file_size")] {
            let bytes = client.download(&urls[n as usize % 2], &file, format, Some(n)).await.unwrap_or_else(|e| panic!("version {n} {format}: {e}"));
            assert_eq!(bytes.len() as i64, version[size].as_i64().unwrap(), "version {n} {format} size");
        }
    }
    first.kill();
    second.kill();
    t.cleanup().await;
}
