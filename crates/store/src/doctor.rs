//! `doctor`: the original's validate-installation script done properly —
//! the database is reachable and migrated, storage is writable, every object
//! the catalogue records is there with its recorded size, every version's
//! manifest reads only bytes that exist, nothing is left that nothing
//! records (`--repair` removes it: objects of changes that crashed, and
//! orphans), the files' stated figures agree with a recount, and no
//! enrichment run is stuck (`--repair` resets it).

use std::collections::HashMap;

use bytes::Bytes;
use chrono::Utc;
use futures::TryStreamExt;

use crate::enrichment::STALE_AFTER;
use crate::training_files::manifest::{Manifest, Piece};
use crate::{token, Store, StoreError};

/// Objects younger than this are never called orphans, and a change's
/// recorded writes younger than this are taken to be in flight: a change
/// may be between writing its objects and committing them.
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
    /// Objects removed by `--repair` (orphans and the writes of crashed changes).
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

/// An object the catalogue records, and the size it records when it does.
struct Recorded {
    size: Option<u64>,
    what: &'static str,
    /// A segment of a change that has not committed: its object appears only
    /// when the write finishes, and a crash may leave the row without it
    /// ("no abandoned writes" clears such rows once they are old).
    uncommitted: bool,
}

impl Store {
    /// Runs every check (needs `Access::Admin` on PostgreSQL to see all owners'
    /// rows). Unreferenced objects and unfinished writes younger than `grace`
    /// are left alone.
    pub async fn doctor(&self, repair: bool, grace: chrono::Duration) -> DoctorReport {
        let mut report = DoctorReport::default();
        let reachable = sqlx::query("SELECT 1").execute(self.catalogue.pool()).await.map(|_| format!("{:?} catalogue answers", self.catalogue.backend())).map_err(|e| e.to_string());
        if !report.record("database reachable", reachable) {
            return report;
        }
        let migrations = match self.migrations().await {
            Ok((applied, known)) if applied == known => Ok(format!("{applied} migration(s) applied")),
            Ok((applied, known)) => Err(format!("{applied} of {known} migration(s) applied: run `lora-files migrate`")),
            Err(e) => Err(e.to_string()),
        };
        report.record("database migrated", migrations);
        report.record("storage writable", self.probe_storage().await.map_err(|e| e.to_string()));

        let cutoff = crate::timestamp_text(Utc::now() - grace);
        let abandoned = match self.abandoned_writes(&cutoff, repair, &mut report.removed).await {
            Ok(result) => result,
            Err(error) => Err(error.to_string()),
        };
        report.record("no abandoned writes", abandoned);
        let abandoned = self.abandoned_members(&cutoff, repair, &mut report.removed).await;
        report.record("no abandoned member rows", abandoned.map_err(|e| e.to_string()).and_then(|r| r));

        let (recorded, stored) = match futures::try_join!(self.recorded_objects(), self.blobs.list_with_age("")) {
            Ok(both) => both,
            Err(error) => {
                report.record("objects present", Err(error.to_string()));
                return report;
            }
        };
        let sizes: HashMap<&str, u64> = stored.iter().map(|(key, size, _)| (key.as_str(), *size)).collect();
        let mut problems = Vec::new();
        for (key, recorded) in &recorded {
            match sizes.get(key.as_str()) {
                None if recorded.uncommitted => {}
                None => problems.push(format!("missing: {key} ({})", recorded.what)),
                Some(actual) if recorded.size.is_some_and(|size| size != *actual) => problems.push(format!(
                    "{key} ({}): {actual} bytes, the catalogue says {}; restore it from a backup, or re-import the conversation / delete the file that holds it",
                    recorded.what,
                    recorded.size.unwrap_or_default()
                )),
                Some(_) => {}
            }
        }
        let present = if problems.is_empty() { Ok(format!("all {} recorded object(s) present with their sizes", recorded.len())) } else { Err(summarize(&problems)) };
        report.record("objects present", present);
        report.record("versions readable", self.versions_readable(&sizes).await.map_err(|e| e.to_string()).and_then(|r| r));

        let young_cutoff = Utc::now() - grace;
        let unreferenced: Vec<&(String, u64, chrono::DateTime<Utc>)> = stored.iter().filter(|(key, _, _)| !recorded.contains_key(key)).collect();
        report.orphans = unreferenced.iter().filter(|(_, _, modified)| *modified < young_cutoff).map(|(key, _, _)| key.clone()).collect();
        let young = unreferenced.len() - report.orphans.len();
        let mut removed = 0;
        if repair {
            for key in &report.orphans {
                if self.blobs.delete(key).await.is_ok() {
                    removed += 1;
                }
            }
            report.removed += removed;
        }
        let recent = match young {
            0 => String::new(),
            n => format!("; {n} recent object(s) not yet counted as orphans (a change may be writing them)"),
        };
        let orphans = match (report.orphans.len(), repair) {
            (0, _) => Ok(format!("no unreferenced objects{recent}")),
            (n, true) if removed == n => Ok(format!("removed {n} unreferenced object(s){recent}")),
            (n, true) => Err(format!("{} of {n} unreferenced object(s) could not be removed{recent}", n - removed)),
            (_, false) => Err(format!("{}; `lora-files doctor --repair` removes them{recent}", summarize(&report.orphans))),
        };
        report.record("no orphans", orphans);
        let uploads = self.unfinished_uploads(repair, grace, &mut report.removed);
        report.record("no unfinished uploads", uploads);
        report.record("figures agree", self.figures_agree().await.map_err(|e| e.to_string()).and_then(|r| r));
        report.record("no stalled enrichment", self.stalled_enrichments(repair).await.map_err(|e| e.to_string()).and_then(|r| r));
        report
    }

    /// Uploads a killed process left open. A writer that fails or is
    /// dropped aborts its upload; one cut off by a crash cannot.
    fn unfinished_uploads(&self, repair: bool, grace: chrono::Duration, removed: &mut usize) -> Result<String, String> {
        let before = std::time::SystemTime::now() - grace.to_std().unwrap_or_default();
        let Some(found) = self.blobs.unfinished_uploads(before) else {
            return Ok("not checked: S3 multipart uploads left open by a crash cannot be listed through object_store; \
                       give the bucket a lifecycle rule (AbortIncompleteMultipartUpload, e.g. after 1 day) to clear them"
                .into());
        };
        let (stale, young) = found.map_err(|e| e.to_string())?;
        let recent = match young {
            0 => String::new(),
            n => format!("; {n} recent upload(s) may still be written"),
        };
        let shown: Vec<String> = stale.iter().map(|p| p.display().to_string()).collect();
        match (stale.len(), repair) {
            (0, _) => Ok(format!("none{recent}")),
            (_, false) => Err(format!("{} (staging files of uploads a crash cut off); `lora-files doctor --repair` removes them{recent}", summarize(&shown))),
            (n, true) => {
                let gone = stale.iter().filter(|p| std::fs::remove_file(p).is_ok()).count();
                *removed += gone;
                if gone == n { Ok(format!("removed {n} unfinished upload(s){recent}")) } else { Err(format!("{} of {n} unfinished upload(s) could not be removed{recent}", n - gone)) }
            }
        }
    }

    /// Segments recorded by changes that never committed (a crash, a lost
    /// race that could not clean up) and are older than `cutoff`; `repair`
    /// deletes them and their records.
    async fn abandoned_writes(&self, cutoff: &str, repair: bool, removed: &mut usize) -> Result<Result<String, String>, StoreError> {
        let pool = self.catalogue.pool();
        let (in_flight,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM training_file_segments WHERE state = 'writing' AND created_at >= $1").bind(cutoff).fetch_one(pool).await?;
        let stale: Vec<(String,)> =
            sqlx::query_as("SELECT object_key FROM training_file_segments WHERE state = 'writing' AND created_at < $1").bind(cutoff).fetch_all(pool).await?;
        let keys: Vec<String> = stale.into_iter().map(|(key,)| key).collect();
        let recent = match in_flight {
            0 => String::new(),
            n => format!("; {n} recent write(s) of changes in flight"),
        };
        if keys.is_empty() {
            return Ok(Ok(format!("none{recent}")));
        }
        if !repair {
            return Ok(Err(format!("{}; `lora-files doctor --repair` removes them{recent}", summarize(&keys))));
        }
        for key in &keys {
            self.blobs.delete(key).await?;
            sqlx::query("DELETE FROM training_file_segments WHERE object_key = $1 AND state = 'writing'").bind(key).execute(pool).await?;
            *removed += 1;
        }
        Ok(Ok(format!("removed {} object(s) of changes that never committed{recent}", keys.len())))
    }

    /// Member rows staged by changes that never committed, older than
    /// `cutoff`; `repair` deletes them (nothing reads them but their commit).
    async fn abandoned_members(&self, cutoff: &str, repair: bool, removed: &mut usize) -> Result<Result<String, String>, StoreError> {
        let pool = self.catalogue.pool();
        let (in_flight,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM training_file_pending_members WHERE added_at >= $1").bind(cutoff).fetch_one(pool).await?;
        let recent = match in_flight {
            0 => String::new(),
            n => format!("; {n} recent row(s) of changes in flight"),
        };
        let (stale,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM training_file_pending_members WHERE added_at < $1").bind(cutoff).fetch_one(pool).await?;
        Ok(match (stale, repair) {
            (0, _) => Ok(format!("none{recent}")),
            (n, false) => Err(format!("{n} member row(s) of changes that never committed; `lora-files doctor --repair` removes them{recent}")),
            (_, true) => {
                let gone = sqlx::query("DELETE FROM training_file_pending_members WHERE added_at < $1").bind(cutoff).execute(pool).await?.rows_affected();
                *removed += gone as usize;
                Ok(format!("removed {gone} member row(s) of changes that never committed{recent}"))
            }
        })
    }

    /// Every range of every version lies inside an object that is there.
    async fn versions_readable(&self, sizes: &HashMap<&str, u64>) -> Result<Result<String, String>, StoreError> {
        let mut rows = sqlx::query_as::<_, (String, i64, String)>("SELECT training_file_id, version, manifest FROM training_file_versions WHERE manifest IS NOT NULL")
            .fetch(self.catalogue.pool());
        let (mut versions, mut problems) = (0, Vec::new());
        while let Some((file_id, version, text)) = rows.try_next().await? {
            versions += 1;
            let manifest = Manifest::from_text(&text)?;
            for piece in manifest.json.body.iter().chain(&manifest.jsonl.body) {
                if let Piece::Range { key, offset, length } = piece {
                    if sizes.get(key.as_str()).is_none_or(|size| offset + length > *size) {
                        problems.push(format!("version {version} of {file_id} reads bytes {offset}..{} of {key}, which are not there", offset + length));
                    }
                }
            }
        }
        Ok(if problems.is_empty() { Ok(format!("every range of {versions} version(s) is stored")) } else { Err(summarize(&problems)) })
    }

    /// Each file's stated figures equal a recount of its members.
    async fn figures_agree(&self) -> Result<Result<String, String>, StoreError> {
        let files: Vec<(String, String, i64, i64, i64)> =
            sqlx::query_as("SELECT id, owner_id, conversation_count, total_training_pairs, total_turns FROM training_files WHERE current_version > 0")
                .fetch_all(self.catalogue.pool())
                .await?;
        let mut problems = Vec::new();
        for (id, owner, conversations, pairs, turns) in &files {
            let (count, sum_pairs, sum_turns): (i64, Option<i64>, Option<i64>) =
                sqlx::query_as("SELECT COUNT(*), CAST(SUM(pairs) AS BIGINT), CAST(SUM(turns) AS BIGINT) FROM training_file_conversations WHERE training_file_id = $1 AND owner_id = $2")
                    .bind(id)
                    .bind(owner)
                    .fetch_one(self.catalogue.pool())
                    .await?;
            if (count, sum_pairs.unwrap_or(0), sum_turns.unwrap_or(0)) != (*conversations, *pairs, *turns) {
                problems.push(format!("{id} states {conversations} conversations / {pairs} pairs / {turns} turns; its members add up to {count} / {} / {}", sum_pairs.unwrap_or(0), sum_turns.unwrap_or(0)));
            }
        }
        Ok(if problems.is_empty() { Ok(format!("{} file(s) state what their members add up to", files.len())) } else { Err(summarize(&problems)) })
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

    /// Every object key the catalogue points at: segments (committed, or
    /// being written by a change in flight), objects of versions and
    /// fragments written before segments, enriched files and sources.
    async fn recorded_objects(&self) -> Result<HashMap<String, Recorded>, StoreError> {
        let pool = self.catalogue.pool();
        let mut recorded = HashMap::new();
        let segments: Vec<(String, Option<i64>, String)> = sqlx::query_as("SELECT object_key, size, state FROM training_file_segments").fetch_all(pool).await?;
        for (key, size, state) in segments {
            recorded.insert(key, Recorded { size: size.map(|s| s as u64), what: "a segment", uncommitted: state == "writing" });
        }
        let versions: Vec<(String, i64, String, i64)> = sqlx::query_as(
            "SELECT json_file_path, json_file_size, jsonl_file_path, jsonl_file_size FROM training_file_versions \
             WHERE manifest IS NULL AND json_file_path IS NOT NULL AND jsonl_file_path IS NOT NULL",
        )
        .fetch_all(pool)
        .await?;
        for (json, json_size, jsonl, jsonl_size) in versions {
            recorded.insert(json, Recorded { size: Some(json_size as u64), what: "a version", uncommitted: false });
            recorded.insert(jsonl, Recorded { size: Some(jsonl_size as u64), what: "a version", uncommitted: false });
        }
        let fragments: Vec<(String, i64, String, i64)> = sqlx::query_as(
            "SELECT fragment_json_path, fragment_json_size, fragment_jsonl_path, fragment_jsonl_size FROM training_file_conversations WHERE fragment_json_framed = 0",
        )
        .fetch_all(pool)
        .await?;
        for (json, json_size, jsonl, jsonl_size) in fragments {
            recorded.entry(json).or_insert(Recorded { size: Some(json_size as u64), what: "a fragment", uncommitted: false });
            recorded.entry(jsonl).or_insert(Recorded { size: Some(jsonl_size as u64), what: "a fragment", uncommitted: false });
        }
        let enriched: Vec<(String, Option<i64>)> =
            sqlx::query_as("SELECT enriched_file_path, enriched_file_size FROM conversations WHERE enriched_file_path IS NOT NULL").fetch_all(pool).await?;
        for (key, size) in enriched {
            recorded.insert(key, Recorded { size: size.map(|s| s as u64), what: "an enriched conversation", uncommitted: false });
        }
        // Raw and parsed sources (an enriched import's source is its enriched file).
        let sources: Vec<(String,)> = sqlx::query_as(
            "SELECT source_path FROM conversations WHERE source_path IS NOT NULL AND (enriched_file_path IS NULL OR source_path <> enriched_file_path)",
        )
        .fetch_all(pool)
        .await?;
        for (key,) in sources {
            recorded.entry(key).or_insert(Recorded { size: None, what: "a conversation's source", uncommitted: false });
        }
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
