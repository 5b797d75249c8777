//! The catalogue database: one sqlx `Any` pool over SQLite (embedded default)
//! or PostgreSQL, the same plain-SQL queries on both, migrations from files.

use std::path::Path;
use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::error::StoreError;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

pub type Transaction = sqlx::Transaction<'static, sqlx::Any>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Who the connection acts as. The service uses `Service`: on PostgreSQL it
/// switches to the `lora_files_app` role so row-level security applies.
/// Operator commands (migrate, doctor, user list) use `Admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Service,
    Admin,
}

/// A user id as the catalogue stores it (UUID text).
pub type UserId = str;

#[derive(Clone, Debug)]
pub struct Catalogue {
    pool: AnyPool,
    backend: Backend,
}

impl Catalogue {
    /// The SQLite catalogue of a data directory (created and migrated on first use).
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!("sqlite://{}?mode=rwc", data_dir.join("catalogue.sqlite3").display())
    }

    /// Connects, applies pending migrations, and returns a pool acting with `access`.
    pub async fn connect(url: &str, access: Access) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Config(format!("unsupported database URL {:?}: use sqlite://… or postgres://…", redact(url))));
        };
        let options = AnyConnectOptions::from_str(url).map_err(|e| StoreError::Config(format!("bad database URL: {e}")))?;
        let admin = Self::open_pool(options.clone(), backend, Access::Admin).await?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&admin).await.map_err(|e| StoreError::Config(format!("migrating the catalogue failed: {e}")))?;
        if access == Access::Admin || backend == Backend::Sqlite {
            return Ok(Self { pool: admin, backend });
        }
        admin.close().await;
        Ok(Self { pool: Self::open_pool(options, backend, Access::Service).await?, backend })
    }

    async fn open_pool(options: AnyConnectOptions, backend: Backend, access: Access) -> Result<AnyPool, StoreError> {
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    match backend {
                        // WAL lets readers run beside the one writer; the busy
                        // timeout makes writers queue instead of failing.
                        Backend::Sqlite => {
                            conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;").await?;
                        }
                        Backend::Postgres if access == Access::Service => {
                            conn.execute("SET ROLE lora_files_app").await?;
                        }
                        Backend::Postgres => {}
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(pool)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction acting as `user`: on PostgreSQL, row-level security sees only their rows.
    pub async fn begin_as(&self, user: &UserId) -> Result<Transaction, StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT set_config('lora_files.user_id', $1, true)").bind(user).execute(&mut *tx).await?;
        }
        Ok(tx)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The migrations applied, newest last (for `doctor`).
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success = $1 ORDER BY version")
            .bind(true)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }

    /// How many migrations this build knows.
    pub fn known_migrations(&self) -> usize {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.iter().count(),
            Backend::Postgres => POSTGRES_MIGRATIONS.iter().count(),
        }
    }
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
