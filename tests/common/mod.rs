//! `lora-files serve` as a child process, and an HTTP client that speaks to
//! it as users do (shared by the multi-process and crash tests).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use lora_files_store::testing::TestStore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Shared by every child so a token outlives a restart and works on either server.
pub const SECRET: &str = "crash-harness-secret-0123456789abcdef";

/// One `serve` process on the test's catalogue and storage folder.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    pub fn start(t: &TestStore) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lora-files"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--read-cache-ms", "0", "--job-claim-seconds", "3", "--data-dir"])
            .arg(t.dir.path())
            .env("LORA_FILES_JWT_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped());
        if let Some(url) = &t.config.database_url {
            command.args(["--database-url", url]);
        }
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("serve exited before it listened").unwrap();
            if let Some(rest) = line.split("is serving on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep reading so a later print never meets a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, url }
    }

    /// SIGKILL: no graceful shutdown, requests in flight are cut.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client acting as alice, with a token issued by any of the servers.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub token: String,
}

/// An answer: status and JSON body (`Null` when empty), or the transport error
/// of a request cut by a kill.
pub type Answer = Result<(u16, Value), String>;

impl Client {
    pub async fn login(url: &str) -> Self {
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().unwrap();
        let body: Value = http
            .post(format!("{url}/api/auth/token"))
            .json(&json!({"email": "alice@example.com", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Self { http, token: body["access_token"].as_str().unwrap_or_else(|| panic!("no token: {body}")).to_owned() }
    }

    pub async fn call(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())) };
        Ok((status, value))
    }

    pub async fn create(&self, url: &str, name: &str, ids: &[String]) -> Answer {
        self.call(reqwest::Method::POST, &format!("{url}/api/training-files"), Some(json!({"name": name, "conversation_ids": ids}))).await
    }

    pub async fn add(&self, url: &str, file: &str, ids: &[String]) -> Answer {
        self.call(reqwest::Method::POST, &format!("{url}/api/training-files/{file}/add-conversations"), Some(json!({"conversation_ids": ids}))).await
    }

    pub async fn remove(&self, url: &str, file: &str, id: &str) -> Answer {
        self.call(reqwest::Method::DELETE, &format!("{url}/api/training-files/{file}/conversations/{id}"), None).await
    }

    /// Every member id of a file, in order.
    pub async fn members(&self, url: &str, file: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut page = format!("{url}/api/training-files/{file}/conversations?limit=500");
            if let Some(cursor) = &cursor {
                page.push_str(&format!("&cursor={cursor}"));
            }
            let (status, body) = self.call(reqwest::Method::GET, &page, None).await.unwrap();
            assert_eq!(status, 200, "{body}");
            ids.extend(body["conversations"].as_array().unwrap().iter().map(|m| m["conversation_id"].as_str().unwrap().to_owned()));
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return ids,
            }
        }
    }

    pub async fn versions(&self, url: &str, file: &str) -> Vec<Value> {
        let (status, body) = self.call(reqwest::Method::GET, &format!("{url}/api/training-files/{file}/versions"), None).await.unwrap();
        assert_eq!(status, 200, "{body}");
        body["versions"].as_array().unwrap().clone()
    }

    /// The bytes of one version (the current one when `None`) in `format`.
    pub async fn download(&self, url: &str, file: &str, format: &str, version: Option<i64>) -> Result<Vec<u8>, String> {
        let mut link = format!("{url}/api/training-files/{file}/download?format={format}");
        if let Some(version) = version {
            link.push_str(&format!("&version={version}"));
        }
        let (status, body) = self.call(reqwest::Method::GET, &link, None).await?;
        if status != 200 {
            return Err(format!("{status}: {body}"));
        }
        let response = self.http.get(body["download_url"].as_str().unwrap()).send().await.map_err(|e| e.to_string())?;
        if response.status() != 200 {
            return Err(format!("download answered {}", response.status()));
        }
        Ok(response.bytes().await.map_err(|e| e.to_string())?.to_vec())
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks that the current version's JSON, its JSONL and the member list tell
/// the same story, and returns the members.
pub async fn check_consistent(client: &Client, url: &str, file: &str) -> Vec<String> {
    let members = client.members(url, file).await;
    let versions = client.versions(url, file).await;
    let latest = versions.last().unwrap();
    let json = client.download(url, file, "json", None).await.unwrap();
    let jsonl = client.download(url, file, "jsonl", None).await.unwrap();
    assert_eq!(json.len() as i64, latest["json_file_size"].as_i64().unwrap(), "the latest JSON has its recorded size");
    assert_eq!(jsonl.len() as i64, latest["jsonl_file_size"].as_i64().unwrap(), "the latest JSONL has its recorded size");
    let full: Value = serde_json::from_slice(&json).expect("the latest JSON parses");
    assert_eq!(full["training_file_metadata"]["total_conversations"].as_u64().unwrap() as usize, members.len(), "JSON and members agree on the count");
    assert_eq!(latest["conversation_count"].as_u64().unwrap() as usize, members.len(), "the version and members agree");
    let text = String::from_utf8(json).unwrap();
    for id in &members {
        assert!(text.contains(id.as_str()), "member {id} is in the JSON");
    }
    let lines: Vec<Value> = jsonl.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).expect("each JSONL line parses")).collect();
    assert_eq!(lines.len() as i64, latest["total_training_pairs"].as_i64().unwrap(), "one JSONL line per training pair");
    members
}
