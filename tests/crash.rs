//! The crash harness (issue 16): `serve` children SIGKILLed at seeded random
//! moments while several clients create files, add and remove conversations.
//! After each restart every version a client saw committed downloads with its
//! recorded size and SHA-256, JSON, JSONL and members agree, no 2xx change is
//! lost, and at the end `doctor --repair` leaves a clean store.
//!
//! CI runs a few kills per backend; `LORA_FILES_CRASH_KILLS=60` runs more and
//! `LORA_FILES_CRASH_SEED=…` replays a run (the seed is printed).

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use common::{check_consistent, sha256_hex, Answer, Client, Server};
use lora_files_store::testing::{Backend, TestStore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CLIENTS: usize = 3;
const IDS_PER_CLIENT: usize = 24;

/// A version a client saw committed (a 2xx answer), with what it downloaded then.
#[derive(Clone, Debug)]
struct Committed {
    version: i64,
    conversation_count: i64,
    json: Option<(usize, String)>,
}

#[derive(Debug)]
struct TrackedFile {
    id: String,
    members: BTreeSet<String>,
    committed: Vec<Committed>,
    /// Versions before this index were checked after an earlier restart.
    checked: usize,
}

/// A change whose answer a kill cut off: it may or may not have landed.
#[derive(Debug)]
enum Pending {
    Add(usize, String),
    Remove(usize, String),
    Create(String, Vec<String>),
}

struct ClientState {
    index: usize,
    client: Client,
    rng: StdRng,
    pool: Vec<String>,
    files: Vec<TrackedFile>,
    pending: Vec<Pending>,
    confirmed: usize,
    cut: usize,
}

/// A change answered 202 (its job outlived the server's wait, e.g. held by
/// a worker of a server that was killed until its lease ran out) is
/// followed on any live server to its end: success answers as the direct
/// change would (`done` with the file's body), anything else as it ended.
async fn follow_job(client: &Client, urls: &RwLock<Vec<String>>, answer: Answer, done: u16) -> Answer {
    let Ok((202, body)) = &answer else { return answer };
    let job = body["job"]["id"].as_str().expect("a 202 names its job").to_owned();
    let file = body["trainingFile"]["id"].as_str().expect("a 202 names its file").to_owned();
    for _ in 0..1200 {
        let url = urls.read().unwrap()[0].clone();
        if let Ok((200, job)) = client.call(reqwest::Method::GET, &format!("{url}/api/jobs/{job}"), None).await {
            match job["state"].as_str() {
                Some("succeeded") => {
                    if let Ok((200, file)) = client.call(reqwest::Method::GET, &format!("{url}/api/training-files/{file}"), None).await {
                        return Ok((done, file));
                    }
                }
                Some("failed" | "cancelled") => return Ok((409, job)),
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {job} did not end in two minutes")
}

impl ClientState {
    fn free_ids(&self) -> Vec<String> {
        let busy: BTreeSet<&String> = self.files.iter().flat_map(|f| f.members.iter()).chain(self.pending.iter().flat_map(|p| match p {
            Pending::Add(_, id) | Pending::Remove(_, id) => vec![id],
            Pending::Create(_, ids) => ids.iter().collect(),
        })).collect();
        self.pool.iter().filter(|id| !busy.contains(id)).cloned().collect()
    }

    fn pending_in(&self, file: usize) -> bool {
        self.pending.iter().any(|p| matches!(p, Pending::Add(f, _) | Pending::Remove(f, _) if *f == file))
    }

    /// One change against a random server; the test fails on any answer but success.
    async fn step(&mut self, urls: &RwLock<Vec<String>>) {
        let url = {
            let urls = urls.read().unwrap();
            urls[self.rng.gen_range(0..urls.len())].clone()
        };
        let free = self.free_ids();
        let settled: Vec<usize> = (0..self.files.len()).filter(|&f| !self.pending_in(f)).collect();
        let choice = self.rng.gen_range(0..10);
        if settled.is_empty() || (choice == 0 && free.len() >= 2) {
            if free.len() < 2 {
                // Nothing to change until a restart settles what a kill cut off.
                tokio::time::sleep(Duration::from_millis(20)).await;
                return;
            }
            let name = format!("client {} file {}", self.index, uuid::Uuid::new_v4().simple());
            let ids = free[..2].to_vec();
            match follow_job(&self.client, urls, self.client.create(&url, &name, &ids).await, 201).await {
                Ok((201, body)) => {
                    let file = &body["trainingFile"];
                    let id = file["id"].as_str().unwrap().to_owned();
                    self.files.push(TrackedFile { id, members: ids.into_iter().collect(), committed: Vec::new(), checked: 0 });
                    let index = self.files.len() - 1;
                    self.committed(&url, index, file).await;
                }
                Ok((status, body)) => panic!("client {}: create answered {status}: {body}", self.index),
                Err(_) => {
                    self.cut += 1;
                    self.pending.push(Pending::Create(name, ids));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            return;
        }
        let file = settled[self.rng.gen_range(0..settled.len())];
        let tracked = &self.files[file];
        let remove = tracked.members.len() > 1 && (free.is_empty() || choice < 5);
        let (file_id, id) = if remove {
            let members: Vec<&String> = tracked.members.iter().collect();
            (tracked.id.clone(), members[self.rng.gen_range(0..members.len())].clone())
        } else if let Some(id) = free.first() {
            (tracked.id.clone(), id.clone())
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        };
        let answer = if remove { self.client.remove(&url, &file_id, &id).await } else { self.client.add(&url, &file_id, std::slice::from_ref(&id)).await };
        let answer = follow_job(&self.client, urls, answer, 200).await;
        match answer {
            Ok((200, body)) => {
                if remove {
                    self.files[file].members.remove(&id);
                } else {
                    self.files[file].members.insert(id);
                }
                self.committed(&url, file, &body["trainingFile"]).await;
            }
            Ok((status, body)) => panic!("client {}: {} of {id} answered {status}: {body}", self.index, if remove { "remove" } else { "add" }),
            Err(_) => {
                self.cut += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.pending.push(if remove { Pending::Remove(file, id) } else { Pending::Add(file, id) });
            }
        }
    }

    /// Records a committed version and, when the server still answers, its bytes' size and digest.
    async fn committed(&mut self, url: &str, file: usize, body: &serde_json::Value) {
        self.confirmed += 1;
        let version = body["version"].as_i64().unwrap();
        let conversation_count = body["conversation_count"].as_i64().unwrap();
        assert_eq!(conversation_count as usize, self.files[file].members.len(), "client {}: the answer counts the members", self.index);
        let json = self.client.download(url, &self.files[file].id, "json", Some(version)).await.ok().map(|bytes| (bytes.len(), sha256_hex(&bytes)));
        self.files[file].committed.push(Committed { version, conversation_count, json });
    }

    /// After a restart: settles the changes a kill cut off from what the
    /// server now holds, then checks every file against what was committed.
    async fn verify(&mut self, url: &str, everything: bool) {
        // A change cut off after its job was queued lands (or fails) when a
        // worker takes the job again: wait for the queue to be idle first.
        for _ in 0..1200 {
            let mut busy = false;
            for state in ["queued", "running"] {
                let (status, body) = self.client.call(reqwest::Method::GET, &format!("{url}/api/jobs?state={state}"), None).await.unwrap();
                assert_eq!(status, 200, "{body}");
                busy |= body["jobs"].as_array().is_some_and(|jobs| !jobs.is_empty());
            }
            if !busy {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for pending in std::mem::take(&mut self.pending) {
            match pending {
                Pending::Add(file, id) | Pending::Remove(file, id) => {
                    let members = self.client.members(url, &self.files[file].id).await;
                    if members.contains(&id) {
                        self.files[file].members.insert(id);
                    } else {
                        self.files[file].members.remove(&id);
                    }
                }
                Pending::Create(name, ids) => {
                    let (status, body) = self.client.call(reqwest::Method::GET, &format!("{url}/api/training-files?status=all&q={}", name.replace(' ', "%20")), None).await.unwrap();
                    assert_eq!(status, 200, "{body}");
                    if let Some(file) = body["files"].as_array().unwrap().first() {
                        // A create whose job was queued before the kill is finished by a worker after it.
                        let mut file = file.clone();
                        for _ in 0..600 {
                            if file["status"] != "processing" {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            let (_, detail) = self.client.call(reqwest::Method::GET, &format!("{url}/api/training-files/{}", file["id"].as_str().unwrap()), None).await.unwrap();
                            file = detail["trainingFile"].clone();
                        }
                        assert_eq!(file["status"], "active", "a create cut by a kill either lands whole (now or by its job) or leaves nothing: {file}");
                        self.files.push(TrackedFile { id: file["id"].as_str().unwrap().to_owned(), members: ids.into_iter().collect(), committed: Vec::new(), checked: 0 });
                    }
                }
            }
        }
        for tracked in &mut self.files {
            let members: BTreeSet<String> = check_consistent(&self.client, url, &tracked.id).await.into_iter().collect();
            assert_eq!(members, tracked.members, "client {}: file {} holds exactly its committed changes", self.index, tracked.id);
            let versions = self.client.versions(url, &tracked.id).await;
            let from = if everything { 0 } else { tracked.checked };
            for committed in &tracked.committed[from..] {
                let listed = versions.iter().find(|v| v["version"] == committed.version).unwrap_or_else(|| panic!("committed version {} of {} is listed", committed.version, tracked.id));
                assert_eq!(listed["conversation_count"], committed.conversation_count);
                let bytes = self.client.download(url, &tracked.id, "json", Some(committed.version)).await.unwrap_or_else(|e| panic!("version {} of {}: {e}", committed.version, tracked.id));
                assert_eq!(bytes.len() as i64, listed["json_file_size"].as_i64().unwrap(), "version {} has its listed size", committed.version);
                if let Some((size, sha)) = &committed.json {
                    assert_eq!((bytes.len(), sha256_hex(&bytes)), (*size, sha.clone()), "version {} of {} downloads the same bytes as when it was committed", committed.version, tracked.id);
                }
            }
            tracked.checked = tracked.committed.len();
        }
    }
}

fn setting(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name} must be a number")))
}

async fn crash_run(backend: Backend, servers: usize, default_kills: u64) {
    let seed = setting("LORA_FILES_CRASH_SEED").unwrap_or_else(rand::random);
    let kills = setting("LORA_FILES_CRASH_KILLS").unwrap_or(default_kills);
    println!("crash harness: {backend:?}, {servers} server(s), {kills} kills, LORA_FILES_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let t = TestStore::new(backend).await;
    let ids = t.import_copies(&t.alice, CLIENTS * IDS_PER_CLIENT).await;
    let mut running: Vec<Server> = (0..servers).map(|_| Server::start(&t)).collect();
    let urls = Arc::new(RwLock::new(running.iter().map(|s| s.url.clone()).collect::<Vec<_>>()));
    let client = Client::login(&running[0].url).await;
    let mut states: Vec<ClientState> = ids
        .chunks(IDS_PER_CLIENT)
        .enumerate()
        .map(|(index, pool)| ClientState { index, client: client.clone(), rng: StdRng::seed_from_u64(seed.wrapping_add(index as u64 + 1)), pool: pool.to_vec(), files: Vec::new(), pending: Vec::new(), confirmed: 0, cut: 0 })
        .collect();

    for kill in 0..kills {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks: Vec<_> = states
            .into_iter()
            .map(|mut state| {
                let (stop, urls) = (stop.clone(), urls.clone());
                tokio::spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        state.step(&urls).await;
                    }
                    state
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(50..1500))).await;
        let victim = rng.gen_range(0..running.len());
        running.remove(victim).kill();
        let replacement = Server::start(&t);
        urls.write().unwrap()[victim] = replacement.url.clone();
        running.insert(victim, replacement);
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        states = Vec::new();
        for task in tasks {
            states.push(task.await.unwrap_or_else(|e| panic!("a client failed (seed {seed}, kill {}): {e}", kill + 1)));
        }
        let url = running[rng.gen_range(0..running.len())].url.clone();
        for state in &mut states {
            state.verify(&url, kill + 1 == kills).await;
        }
    }
    let (confirmed, cut): (usize, usize) = states.iter().fold((0, 0), |(c, u), s| (c + s.confirmed, u + s.cut));
    let files: usize = states.iter().map(|s| s.files.len()).sum();
    println!("crash harness: {kills} kills survived, {confirmed} changes confirmed and none lost, {cut} cut by a kill, {files} files checked (seed {seed})");
    assert!(confirmed >= kills as usize, "the clients made progress between kills: {confirmed}");
    for server in running {
        server.kill();
    }
    for repair in [true, false] {
        let mut doctor = std::process::Command::new(env!("CARGO_BIN_EXE_lora-files"));
        doctor.arg("doctor").arg("--data-dir").arg(t.dir.path());
        if repair {
            doctor.arg("--repair");
        }
        if let Some(url) = &t.config.database_url {
            doctor.args(["--database-url", url]);
        }
        let output = doctor.output().unwrap();
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success() && !report.contains("[FAIL]"), "doctor{} after the kills (seed {seed}):\n{report}", if repair { " --repair" } else { "" });
    }
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_changes_survive_kill_9_of_the_server() {
    crash_run(Backend::Sqlite, 1, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_changes_survive_kill_9_of_one_of_two_servers() {
    crash_run(Backend::Postgres, 2, 6).await;
}
