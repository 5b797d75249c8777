//! PostgreSQL row-level security, proved at the SQL level: through the
//! service's own connections (role `lora_files_app`), one owner's rows are
//! invisible and untouchable to another, and to nobody in particular.

mod common;

use common::{Backend, TestStore};

async fn count(t: &TestStore, acting_as: Option<&str>, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let mut tx = t.transaction_as(acting_as).await;
    let (n,): (i64,) = sqlx::query_as(&sql).fetch_one(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_owner_reads_and_writes_see_nothing_at_the_sql_level() {
    let t = TestStore::new(Backend::Postgres).await;
    let ids = t.import_copies(&t.alice, 2).await;
    let file = t.store.training_files().create(&t.alice, "private", None, &ids).await.unwrap();

    let (role,): (String,) = sqlx::query_as("SELECT current_user::text").fetch_one(t.pool()).await.unwrap();
    assert_eq!(role, "lora_files_app", "the service does not run as a superuser");

    for table in ["training_files", "training_file_conversations", "training_file_versions", "training_file_segments", "conversations", "users"] {
        assert!(count(&t, Some(&t.alice), table).await > 0, "{table}: the owner sees their rows");
        let bobs_view = if table == "users" { 1 } else { 0 };
        assert_eq!(count(&t, Some(&t.bob), table).await, bobs_view, "{table}: another owner sees only their own");
        assert_eq!(count(&t, None, table).await, 0, "{table}: no acting user, no rows");
    }

    // Writes by another owner match no row, and cannot create rows owned by someone else.
    let mut tx = t.transaction_as(Some(&t.bob)).await;
    let updated = sqlx::query("UPDATE training_files SET name = 'stolen' WHERE id = $1").bind(&file.id).execute(&mut *tx).await.unwrap();
    assert_eq!(updated.rows_affected(), 0);
    let deleted = sqlx::query("DELETE FROM training_file_versions WHERE training_file_id = $1").bind(&file.id).execute(&mut *tx).await.unwrap();
    assert_eq!(deleted.rows_affected(), 0);
    tx.commit().await.unwrap();
    let mut tx = t.transaction_as(Some(&t.bob)).await;
    let forged = sqlx::query("INSERT INTO users (id, email, created_at) VALUES ($1, 'forged@example.com', '2026-01-01T00:00:00.000Z')")
        .bind(uuid::Uuid::new_v4().to_string())
        .execute(&mut *tx)
        .await;
    assert!(forged.is_err(), "a row for another user violates the policy");
    drop(tx);
    assert_eq!(t.store.training_files().get(&t.alice, &file.id).await.unwrap().name, "private");
    t.cleanup().await;
}
