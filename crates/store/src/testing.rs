//! Test support (feature `testing`): a fresh store per test on SQLite (a
//! temporary folder) or on PostgreSQL (a new database, dropped afterwards),
//! with two users and conversations made from the real fixtures. Used by
//! this crate's and the server's integration tests.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use lora_files_format::enrich::reference::SeedRow;

use crate::{Access, Store, StoreConfig};

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

impl TestStore {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(dir.path());
        config.target_model = Some("llama-3.1-8b".into());
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
        if let Ok(url) = std::env::var("LORA_FILES_TEST_SERVICE_STORAGE_URL") {
            config.storage_url = Some(format!("{url}/{}", uuid::Uuid::new_v4().simple()));
        }
        let store = Store::open(config.clone(), Access::Service).await.unwrap();
        let alice = store.add_user("alice@example.com", Some("correct horse battery")).await.unwrap().id;
        let bob = store.add_user("bob@example.com", Some("another long secret")).await.unwrap().id;
        Self { store, config, dir, database, alice, bob }
    }

    /// A store on the same catalogue and objects acting as an operator.
    pub async fn admin(&self) -> Store {
        Store::open(self.config.clone(), Access::Admin).await.unwrap()
    }

    /// Imports `count` distinct conversations for `owner` (copies of the
    /// fixtures under new ids); returns their conversation ids.
    pub async fn import_copies(&self, owner: &str, count: usize) -> Vec<String> {
        let templates = enriched_templates();
        let mut ids = Vec::new();
        for i in 0..count {
            let (old_id, text) = &templates[i % templates.len()];
            let new_id = uuid::Uuid::new_v4().to_string();
            let bytes = Bytes::from(text.replace(old_id.as_str(), &new_id));
            self.store.import_enriched(owner, &format!("copy-{i}.json"), bytes).await.unwrap();
            ids.push(new_id);
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
        admin.load_scaffolding(&rows).await.unwrap();
        admin.catalogue.pool().close().await;
    }

    pub async fn cleanup(self) {
        let Self { store, database, .. } = self;
        store.catalogue.pool().close().await;
        if let Some(name) = database {
            let admin = sqlx::PgPool::connect(ADMIN_URL).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin).await.unwrap();
            admin.close().await;
        }
    }
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
