//! User accounts: argon2 password hashes, emails unique (case-insensitive).

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::catalogue::Backend;
use crate::records::User;
use crate::{new_id, now_text, Store, StoreError};

/// The user service; get one with [`Store::users`].
#[derive(Clone, Copy)]
pub struct Users<'s> {
    store: &'s Store,
}

impl<'s> Users<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Adds a user; `password` may be absent for token-only accounts.
    pub async fn add(self, email: &str, password: Option<&str>) -> Result<User, StoreError> {
        let email = normalize_email(email)?;
        if self.by_email(&email).await?.is_some() {
            return Err(StoreError::invalid("email", format!("a user with email {email} already exists")));
        }
        let password_hash = match password {
            Some(password) => Some(off_the_workers(password.to_owned(), |p| hash_password(&p)).await??),
            None => None,
        };
        let user = User { id: new_id(), email, password_hash, created_at: now_text() };
        self.insert_user(&user).await?;
        Ok(user)
    }

    /// Sets (or resets) the password of the user with `email`; the user is
    /// named by the error when there is none.
    pub async fn set_password(self, email: &str, password: &str) -> Result<User, StoreError> {
        if password.is_empty() {
            return Err(StoreError::invalid("password", "must not be empty"));
        }
        let mut user = self.by_email(email).await?.ok_or_else(|| StoreError::invalid("email", format!("no user has the email {}", email.trim())))?;
        let hash = off_the_workers(password.to_owned(), |p| hash_password(&p)).await??;
        let mut tx = self.store.catalogue.begin_as(&user.id).await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(&hash).bind(&user.id).execute(&mut *tx).await?;
        tx.commit().await?;
        user.password_hash = Some(hash);
        Ok(user)
    }

    /// Creates the row of a user known by id only (a valid token for an unknown `sub`).
    pub async fn provision(self, id: &str, email: Option<&str>) -> Result<User, StoreError> {
        let user = User { id: id.to_owned(), email: email.map_or_else(|| format!("{id}@provisioned.invalid"), str::to_lowercase), password_hash: None, created_at: now_text() };
        self.insert_user(&user).await?;
        Ok(user)
    }

    async fn insert_user(self, user: &User) -> Result<(), StoreError> {
        let mut tx = self.store.catalogue.begin_as(&user.id).await?;
        sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&user.id)
            .bind(&user.email)
            .bind(&user.password_hash)
            .bind(&user.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every user (an operator's view: needs `Access::Admin` on PostgreSQL).
    pub async fn list(self) -> Result<Vec<User>, StoreError> {
        Ok(sqlx::query_as("SELECT id, email, password_hash, created_at FROM users ORDER BY created_at, email").fetch_all(self.store.catalogue.pool()).await?)
    }

    pub async fn by_email(self, email: &str) -> Result<Option<User>, StoreError> {
        let email = email.trim().to_lowercase();
        if email.contains('\0') {
            // No address holds it (`add` refuses control characters); PostgreSQL could not even compare it.
            return Ok(None);
        }
        let sql = match self.store.catalogue.backend() {
            Backend::Postgres => "SELECT id, email, password_hash, created_at FROM lora_files_user_by_email($1)",
            Backend::Sqlite => "SELECT id, email, password_hash, created_at FROM users WHERE email = $1",
        };
        Ok(sqlx::query_as(sql).bind(email).fetch_optional(self.store.catalogue.pool()).await?)
    }

    /// The user `id`, as seen by that user.
    pub async fn get(self, id: &str) -> Result<Option<User>, StoreError> {
        let mut tx = self.store.catalogue.begin_as(id).await?;
        let user = sqlx::query_as("SELECT id, email, password_hash, created_at FROM users WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// The user whose email and password these are; the same `None` for an
    /// unknown email and a wrong password.
    pub async fn authenticate(self, email: &str, password: &str) -> Result<Option<User>, StoreError> {
        let user = self.by_email(email).await?;
        // An unknown email and an account without a password cost a real
        // check too, so timing does not tell them from a wrong password.
        let hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let has_password = hash.is_some();
        let matches = off_the_workers(password.to_owned(), move |password| match &hash {
            Some(hash) => verify_password(&password, hash),
            None => verify_password(&password, decoy_hash()),
        })
        .await?;
        Ok(user.filter(|_| matches && has_password))
    }
}

/// Runs argon2 (tens of milliseconds of CPU) on the blocking pool, at most
/// as many at once as there are cores, so a burst of logins cannot starve
/// the async workers that answer everything else.
async fn off_the_workers<T: Send + 'static>(password: String, work: impl FnOnce(String) -> T + Send + 'static) -> Result<T, StoreError> {
    static HASHING: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let permits = HASHING.get_or_init(|| tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, usize::from)));
    let _permit = permits.acquire().await.map_err(|e| StoreError::Internal(format!("the hashing pool is closed: {e}")))?;
    tokio::task::spawn_blocking(move || work(password)).await.map_err(|e| StoreError::Internal(format!("hashing a password failed: {e}")))
}

fn normalize_email(email: &str) -> Result<String, StoreError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254 && !email.contains(|c: char| c.is_whitespace() || c.is_control()) && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@') && !domain.starts_with('.'));
    if !valid {
        return Err(StoreError::invalid("email", format!("{email:?} is not an email address")));
    }
    Ok(email)
}

fn hash_password(password: &str) -> Result<String, StoreError> {
    if password.chars().count() < 8 {
        return Err(StoreError::invalid("password", "must be at least 8 characters"));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| StoreError::Internal(format!("hashing a password failed: {e}")))
}

/// A real argon2 hash (made once) that no password matches, checked against
/// when the email is unknown.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&crate::token()).expect("hashing a fresh token cannot fail"))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}
