//! Test support (feature `testing`): a fresh store per test on SQLite (a
//! temporary folder) or on PostgreSQL (a new database, dropped afterwards),
//! with two users and conversations made from the real fixtures. Used by
//! this crate's and the server's integration tests.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use lora_files_format::enrich::reference::SeedRow;

use crate::training_files::DownloadFormat;
use crate::{Access, Store, StoreConfig};

pub mod faults;

pub const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(relative)
}

pub struct TestStore {
    pub store: Store,
    pub config: StoreConfig,
    pub dir: tempfile::TempDir,
    database: Option<String>,
    pub alice: String,
    pub bob: String,
}

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Whether this run must include S3: `CI` or `LORA_FILES_REQUIRE_S3` set to
/// anything but empty, `0` or `false` (then a missing S3 server fails the
/// S3 tests instead of skipping them).
pub fn s3_required() -> bool {
    ["CI", "LORA_FILES_REQUIRE_S3"].iter().any(|name| std::env::var(name).is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false")))
}

/// The test S3 server's base URL (`LORA_FILES_TEST_S3_URL`, which
/// scripts/test.sh sets), or `None` when this run has none: the caller skips
/// its S3 test, unless S3 is [required](s3_required), which fails here.
pub fn s3_url() -> Option<String> {
    let url = std::env::var("LORA_FILES_TEST_S3_URL").ok();
    if url.is_none() {
        assert!(!s3_required(), "LORA_FILES_TEST_S3_URL is not set but the S3 tests are required (CI or LORA_FILES_REQUIRE_S3)");
        eprintln!("LORA_FILES_TEST_S3_URL is not set: run scripts/test.sh for the S3 run");
    }
    url
}

impl TestStore {
    /// A fresh store on `backend`, its objects in a temporary folder, or on
    /// S3 under a new prefix when `LORA_FILES_TEST_SERVICE_STORAGE_URL` names
    /// one (scripts/test.sh runs the suites a second time so).
    pub async fn new(backend: Backend) -> Self {
        Self::with_storage(backend, std::env::var("LORA_FILES_TEST_SERVICE_STORAGE_URL").ok()).await
    }

    /// A fresh store on `backend` with its objects on the test S3 server,
    /// whatever the run's storage; `None` when there is none ([`s3_url`]).
    pub async fn on_s3(backend: Backend) -> Option<Self> {
        Some(Self::with_storage(backend, Some(format!("{}/service", s3_url()?))).await)
    }

    async fn with_storage(backend: Backend, storage_url: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(dir.path());
        config.target_model = Some("llama-3.1-8b".into());
        // Changes of three or more conversations stage their member rows.
        config.member_rows_per_stage = 2;
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let name = format!("lora_files_test_{}", uuid::Uuid::new_v4().simple());
                let admin = sqlx::PgPool::connect(ADMIN_URL).await.expect("PostgreSQL at 127.0.0.1:5432 (scripts/test.sh starts one)");
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
                admin.close().await;
                config.database_url = Some(format!("postgres://postgres@127.0.0.1:5432/{name}"));
                Some(name)
            }
        };
        if let Some(url) = storage_url {
            config.storage_url = Some(format!("{url}/{}", uuid::Uuid::new_v4().simple()));
        }
        let store = Store::open(config.clone(), Access::Service).await.unwrap();
        let alice = store.users().add("alice@example.com", Some("correct horse battery")).await.unwrap().id;
        let bob = store.users().add("bob@example.com", Some("another long secret")).await.unwrap().id;
        Self { store, config, dir, database, alice, bob }
    }

    /// A store on the same catalogue and objects whose download links point
    /// at `public_url`, signed with `secret` (a test server's).
    pub async fn serving(&self, public_url: &str, secret: &[u8]) -> Store {
        let mut config = self.config.clone();
        config.links = crate::LinkSettings { public_url: public_url.to_owned(), secret: secret.to_vec(), lifetime: std::time::Duration::from_secs(3600) };
        Store::open(config, Access::Service).await.unwrap()
    }

    /// The token of a link to version 1 of `file_id` that expired a second ago.
    pub fn expired_link(store: &Store, owner: &str, file_id: &str) -> String {
        store.signer.sign(&crate::links::LinkTarget {
            owner: owner.to_owned(),
            file_id: file_id.to_owned(),
            version: 1,
            format: DownloadFormat::Json,
            filename: "x.json".into(),
            expires: chrono::Utc::now().timestamp() - 1,
        })
    }

    /// The same store (catalogue, caches) with its objects behind a
    /// [`faults::Faults`] switchboard that counts storage calls and fails the one it is told to.
    pub fn faulty(&self) -> (Store, faults::Faults) {
        let faults = faults::Faults::default();
        let mut store = self.store.clone();
        store.blobs = store.blobs.wrapped(|inner| faults::wrap(inner, faults.clone()));
        (store, faults)
    }

    /// A store on the same catalogue and objects acting as an operator.
    pub async fn admin(&self) -> Store {
        Store::open(self.config.clone(), Access::Admin).await.unwrap()
    }

    /// Imports `count` distinct conversations for `owner` (copies of the
    /// fixtures under new ids); returns their conversation ids.
    pub async fn import_copies(&self, owner: &str, count: usize) -> Vec<String> {
        let templates = enriched_templates();
        let mut ids = Vec::with_capacity(count);
        let mut requests = Vec::with_capacity(count);
        for i in 0..count {
            let (old_id, text) = &templates[i % templates.len()];
            let new_id = uuid::Uuid::new_v4().to_string();
            requests.push(crate::conversations::ImportRequest::new(format!("copy-{i}.json"), Bytes::from(text.replace(old_id.as_str(), &new_id))));
            ids.push(new_id);
        }
        for answer in self.store.conversations().import_many(owner, requests).await {
            answer.unwrap();
        }
        ids
    }

    /// Loads the bundled scaffolding seeds (personas, arcs, topics), as an operator would.
    pub async fn load_scaffolding(&self) {
        let mut rows = Vec::new();
        for file in ["personas-seed.ndjson", "emotional-arcs-seed.ndjson", "training-topics-seed.ndjson"] {
            let text = std::fs::read_to_string(fixture(&format!("scaffolding/{file}"))).unwrap();
            rows.extend(text.lines().map(|line| SeedRow::from_value(serde_json::from_str(line).unwrap()).unwrap()));
        }
        let admin = self.admin().await;
        admin.scaffolding().load(&rows).await.unwrap();
        admin.close().await;
    }

    /// The bytes a download link of this version serves (the current one when `version` is `None`).
    pub async fn download(&self, user: &str, file_id: &str, format: DownloadFormat, version: Option<i64>) -> bytes::Bytes {
        self.download_range(user, file_id, format, version, None).await
    }

    /// The bytes `range` of a version, as a download link serves them.
    pub async fn download_range(&self, user: &str, file_id: &str, format: DownloadFormat, version: Option<i64>, range: Option<std::ops::Range<u64>>) -> bytes::Bytes {
        use futures::TryStreamExt;
        let link = self.store.training_files().download(user, file_id, format, version).await.unwrap();
        let token = link.url.rsplit('/').next().unwrap();
        let opened = self.store.training_files().open_link(token).await.unwrap();
        let chunks: Vec<bytes::Bytes> = opened.body(range).try_collect().await.unwrap();
        chunks.concat().into()
    }

    /// Every stored object under `prefix`, with its size (tests look at what a change left).
    pub async fn objects(&self, prefix: &str) -> Vec<(String, u64)> {
        let mut objects = self.store.blobs.list(prefix).await.unwrap();
        objects.sort();
        objects
    }

    /// What is left of uploads nobody finished or aborted: on a local folder
    /// the staging files (as `doctor` finds them, whatever their age), on S3
    /// the multipart uploads open under this store's prefix.
    pub async fn unfinished_uploads(&self) -> Vec<String> {
        if let Some(url) = &self.config.storage_url {
            return open_s3_uploads(url).await;
        }
        let any_age = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        let (staging, _) = self.store.blobs.unfinished_uploads(any_age).expect("a local folder has staging files").unwrap();
        staging.iter().map(|path| path.display().to_string()).collect()
    }

    /// The stored bytes of an object.
    pub async fn object(&self, key: &str) -> bytes::Bytes {
        self.store.blobs.get(key).await.unwrap()
    }

    /// Stores bytes at a new key (tests plant left-overs and damage).
    pub async fn put_object(&self, key: &str, bytes: &'static [u8]) {
        self.store.blobs.put_new(key, Bytes::from_static(bytes)).await.unwrap();
    }

    pub async fn delete_object(&self, key: &str) {
        self.store.blobs.delete(key).await.unwrap();
    }

    /// A transaction on the catalogue acting as `user` (row-level security applies on
    /// PostgreSQL), or as nobody.
    pub async fn transaction_as(&self, user: Option<&str>) -> crate::catalogue::Transaction {
        match user {
            Some(user) => self.store.catalogue.begin_as(user).await.unwrap(),
            None => self.store.catalogue.pool().begin().await.unwrap(),
        }
    }

    /// The service's connection pool (tests check which role it acts as).
    pub fn pool(&self) -> &sqlx::AnyPool {
        self.store.catalogue.pool()
    }

    /// Runs SQL as an operator on the test's catalogue (tests set up states a crash would leave).
    pub async fn execute_as_admin(&self, sql: &str) {
        let admin = self.admin().await;
        sqlx::query(sql).execute(admin.catalogue.pool()).await.unwrap();
        admin.close().await;
    }

    pub async fn cleanup(self) {
        let Self { store, database, .. } = self;
        store.close().await;
        if let Some(name) = database {
            let admin = sqlx::PgPool::connect(ADMIN_URL).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin).await.unwrap();
            admin.close().await;
        }
    }
}

/// The keys of the multipart uploads open under `storage_url`
/// (`s3://bucket/prefix`) on the test S3 server (`AWS_ENDPOINT_URL`).
/// `object_store` cannot list them, so this asks `GET /<bucket>?uploads`
/// itself, unsigned: moto answers that; a real S3 would want it signed.
pub async fn open_s3_uploads(storage_url: &str) -> Vec<String> {
    let url = url::Url::parse(storage_url).unwrap();
    let (bucket, prefix) = (url.host_str().unwrap(), url.path().trim_matches('/'));
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL names the test S3 server");
    let listing = format!("{}/{bucket}?uploads&prefix={prefix}/", endpoint.trim_end_matches('/'));
    let response = reqwest::get(&listing).await.unwrap();
    assert!(response.status().is_success(), "{listing}: {}", response.status());
    let body = response.text().await.unwrap();
    assert!(!body.contains("<IsTruncated>true</IsTruncated>"), "more than a page of open uploads: {body}");
    elements(&body, "Upload").into_iter().flat_map(|upload| elements(upload, "Key")).map(str::to_owned).collect()
}

/// The contents of each `<tag>` element in `xml` (no attributes, no nesting of the same tag).
fn elements<'x>(xml: &'x str, tag: &str) -> Vec<&'x str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(open.as_str()).skip(1).filter_map(|rest| rest.split_once(close.as_str()).map(|(inside, _)| inside)).collect()
}

/// The enriched fixtures that carry `fp_conversation_<uuid>` names: (uuid, text).
pub fn enriched_templates() -> Vec<(String, String)> {
    let mut templates: Vec<(String, String)> = std::fs::read_dir(fixture("enriched"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .filter_map(|text| {
            let value: serde_json::Value = serde_json::from_str(&text).ok()?;
            let name = value.pointer("/dataset_metadata/dataset_name")?.as_str()?.to_owned();
            Some((name.strip_prefix("fp_conversation_")?.to_owned(), text))
        })
        .collect();
    templates.sort();
    templates
}

/// Runs each listed test function on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let store = lora_files_store::testing::TestStore::new(lora_files_store::testing::Backend::Sqlite).await;
                    super::$test(&store).await;
                    store.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let store = lora_files_store::testing::TestStore::new(lora_files_store::testing::Backend::Postgres).await;
                    super::$test(&store).await;
                    store.cleanup().await;
                }
            )*
        }
    };
}
