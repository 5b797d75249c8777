//! `doctor`: the original's validate-installation script done properly —
//! the database is reachable and migrated, storage is writable, every object
//! the catalogue records is there with its recorded size, no object is left
//! that nothing records (those `--repair` removes), and no enrichment run is
//! stuck (those `--repair` resets).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use chrono::Utc;

use crate::enrichment::STALE_AFTER;
use crate::{token, Store, StoreError};

/// Objects younger than this are never called orphans: a change may be
/// between writing its objects and committing them.
pub const ORPHAN_GRACE: chrono::Duration = chrono::Duration::hours(1);

/// At most this many problems are listed per check.
const SHOWN: usize = 10;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DoctorReport {
    pub checks: Vec<Check>,
    pub orphans: Vec<String>,
    pub removed: usize,
}

impl DoctorReport {
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    fn record(&mut self, name: &'static str, result: Result<String, String>) -> bool {
        let ok = result.is_ok();
        self.checks.push(Check { name, ok, detail: result.unwrap_or_else(|e| e) });
        ok
    }
}

impl Store {
    /// Runs every check (needs `Access::Admin` on PostgreSQL to see all owners'
    /// rows). Unreferenced objects younger than `orphan_grace` are left alone.
    pub async fn doctor(&self, repair: bool, orphan_grace: chrono::Duration) -> DoctorReport {
        let mut report = DoctorReport::default();
        let reachable = sqlx::query("SELECT 1").execute(self.catalogue.pool()).await.map(|_| format!("{:?} catalogue answers", self.catalogue.backend())).map_err(|e| e.to_string());
        if !report.record("database reachable", reachable) {
            return report;
        }
        let migrations = match self.catalogue.applied_migrations().await {
            Ok(applied) if applied.len() == self.catalogue.known_migrations() => Ok(format!("{} migration(s) applied", applied.len())),
            Ok(applied) => Err(format!("{} of {} migration(s) applied: run `lora-files migrate`", applied.len(), self.catalogue.known_migrations())),
            Err(e) => Err(e.to_string()),
        };
        report.record("database migrated", migrations);
        report.record("storage writable", self.probe_storage().await.map_err(|e| e.to_string()));

        let recorded = match self.recorded_objects().await {
            Ok(recorded) => recorded,
            Err(error) => {
                report.record("objects present", Err(error.to_string()));
                return report;
            }
        };
        let stored = match self.blobs.list_with_age("").await {
            Ok(stored) => stored,
            Err(error) => {
                report.record("objects present", Err(error.to_string()));
                return report;
            }
        };
        let sizes: HashMap<&str, u64> = stored.iter().map(|(key, size, _)| (key.as_str(), *size)).collect();
        let mut problems = Vec::new();
        for (key, size) in &recorded {
            match sizes.get(key.as_str()) {
                None => problems.push(format!("missing: {key}")),
                Some(actual) if Some(*actual) != *size && size.is_some() => problems.push(format!("{key}: {actual} bytes, the catalogue says {}", size.unwrap_or_default())),
                Some(_) => {}
            }
        }
        let present = if problems.is_empty() { Ok(format!("all {} recorded object(s) present with their sizes", recorded.len())) } else { Err(summarize(&problems)) };
        report.record("objects present", present);

        let referenced: HashSet<&str> = recorded.iter().map(|(key, _)| key.as_str()).collect();
        let cutoff = Utc::now() - orphan_grace;
        report.orphans = stored.iter().filter(|(key, _, modified)| !referenced.contains(key.as_str()) && *modified < cutoff).map(|(key, _, _)| key.clone()).collect();
        if repair {
            for key in &report.orphans {
                if self.blobs.delete(key).await.is_ok() {
                    report.removed += 1;
                }
            }
        }
        let orphans = match (report.orphans.len(), repair) {
            (0, _) => Ok("no unreferenced objects".to_owned()),
            (n, true) if report.removed == n => Ok(format!("removed {n} unreferenced object(s)")),
            (n, true) => Err(format!("{} of {n} unreferenced object(s) could not be removed", n - report.removed)),
            (_, false) => Err(format!("{}; `lora-files doctor --repair` removes them", summarize(&report.orphans))),
        };
        report.record("no orphans", orphans);
        report.record("no stalled enrichment", self.stalled_enrichments(repair).await.map_err(|e| e.to_string()).and_then(|r| r));
        report
    }

    /// Conversations whose enrichment claim is older than [`STALE_AFTER`]
    /// (a run that crashed); `repair` puts them back to `not_started`.
    async fn stalled_enrichments(&self, repair: bool) -> Result<Result<String, String>, StoreError> {
        let before = crate::timestamp_text(Utc::now() - STALE_AFTER);
        let stalled: Vec<(String,)> = sqlx::query_as(
            "SELECT conversation_id FROM conversations WHERE enrichment_status = 'enrichment_in_progress' AND enrichment_started_at < $1",
        )
        .bind(&before)
        .fetch_all(self.catalogue.pool())
        .await?;
        let ids: Vec<String> = stalled.into_iter().map(|(id,)| id).collect();
        if ids.is_empty() {
            return Ok(Ok("no conversation is stuck in enrichment".into()));
        }
        if !repair {
            return Ok(Err(format!("{}; `lora-files doctor --repair` (or enriching them again) resets them", summarize(&ids))));
        }
        sqlx::query(
            "UPDATE conversations SET enrichment_status = 'not_started', enrichment_started_at = NULL, \
             enrichment_error = 'an enrichment run was interrupted; enrich again' \
             WHERE enrichment_status = 'enrichment_in_progress' AND enrichment_started_at < $1",
        )
        .bind(&before)
        .execute(self.catalogue.pool())
        .await?;
        Ok(Ok(format!("reset {} interrupted enrichment(s) to not_started", ids.len())))
    }

    async fn probe_storage(&self) -> Result<String, StoreError> {
        let key = format!("doctor/probe-{}.json", token());
        self.blobs.put_new(&key, Bytes::from_static(b"{}")).await?;
        let read = self.blobs.get(&key).await;
        self.blobs.delete(&key).await?;
        if read? != Bytes::from_static(b"{}") {
            return Err(StoreError::Internal("storage returned other bytes than were written".into()));
        }
        Ok(format!("wrote, read and deleted a probe in {}", self.blobs.describe()))
    }

    /// Every object key the catalogue points at, with its recorded size when it has one.
    async fn recorded_objects(&self) -> Result<Vec<(String, Option<u64>)>, StoreError> {
        let pool = self.catalogue.pool();
        let mut recorded = Vec::new();
        let versions: Vec<(String, i64, String, i64)> =
            sqlx::query_as("SELECT json_file_path, json_file_size, jsonl_file_path, jsonl_file_size FROM training_file_versions").fetch_all(pool).await?;
        for (json, json_size, jsonl, jsonl_size) in versions {
            recorded.push((json, Some(json_size as u64)));
            recorded.push((jsonl, Some(jsonl_size as u64)));
        }
        let fragments: Vec<(String, i64, String, i64)> =
            sqlx::query_as("SELECT fragment_json_path, fragment_json_size, fragment_jsonl_path, fragment_jsonl_size FROM training_file_conversations")
                .fetch_all(pool)
                .await?;
        for (json, json_size, jsonl, jsonl_size) in fragments {
            recorded.push((json, Some(json_size as u64)));
            recorded.push((jsonl, Some(jsonl_size as u64)));
        }
        let enriched: Vec<(String, Option<i64>)> =
            sqlx::query_as("SELECT enriched_file_path, enriched_file_size FROM conversations WHERE enriched_file_path IS NOT NULL").fetch_all(pool).await?;
        recorded.extend(enriched.into_iter().map(|(key, size)| (key, size.map(|s| s as u64))));
        // Raw and parsed sources (an enriched import's source is its enriched file).
        let sources: Vec<(String,)> = sqlx::query_as(
            "SELECT source_path FROM conversations WHERE source_path IS NOT NULL AND (enriched_file_path IS NULL OR source_path <> enriched_file_path)",
        )
        .fetch_all(pool)
        .await?;
        recorded.extend(sources.into_iter().map(|(key,)| (key, None)));
        Ok(recorded)
    }
}

fn summarize(problems: &[String]) -> String {
    let mut text = problems.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("; ");
    if problems.len() > SHOWN {
        text.push_str(&format!("; and {} more", problems.len() - SHOWN));
    }
    format!("{} problem(s): {text}", problems.len())
}
