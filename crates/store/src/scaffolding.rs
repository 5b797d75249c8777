//! Scaffolding reference data: personas, emotional arcs, training topics and
//! prompt templates. Shared by every user (not owner data); loaded from the
//! seed NDJSON files by key, read by enrichment and listed by the API.

use lora_files_format::value::Value;

use lora_files_format::enrich::reference::{EmotionalArc, Persona, Reference, SeedKind, SeedRow, Template, TrainingTopic};

use crate::{Store, StoreError};

pub use lora_files_format::quality::ScaffoldingKeys;

/// Table and key column of each kind.
fn table(kind: SeedKind) -> (&'static str, &'static str) {
    match kind {
        SeedKind::Persona => ("personas", "persona_key"),
        SeedKind::EmotionalArc => ("emotional_arcs", "arc_key"),
        SeedKind::TrainingTopic => ("training_topics", "topic_key"),
        SeedKind::Template => ("prompt_templates", "arc_key"),
    }
}

/// One stored row: its key, id, name and the seed object it came from.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct ScaffoldingRow {
    pub key: String,
    pub id: Option<String>,
    pub name: String,
    pub data: String,
}

impl ScaffoldingRow {
    /// The seed object with its `id` (what the API lists).
    pub fn to_value(&self) -> Value {
        let mut value: Value = serde_json::from_str(&self.data).unwrap_or(Value::Null);
        if let (Value::Object(map), Some(id)) = (&mut value, &self.id) {
            map.insert("id".into(), id.clone().into());
        }
        value
    }

    fn data(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }

    fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }
}

/// The scaffolding service; get one with [`Store::scaffolding`].
#[derive(Clone, Copy)]
pub struct Scaffolding<'s> {
    store: &'s Store,
}

impl<'s> Scaffolding<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Inserts or replaces `rows` by key, all in one transaction (loading the
    /// same file twice changes nothing). Needs admin access on PostgreSQL.
    pub async fn load(self, rows: &[SeedRow]) -> Result<(), StoreError> {
        let mut tx = self.store.catalogue.pool().begin().await?;
        for row in rows {
            let (table, key) = table(row.kind);
            let sql = format!(
                "INSERT INTO {table} ({key}, id, name, data) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT ({key}) DO UPDATE SET id = excluded.id, name = excluded.name, data = excluded.data"
            );
            sqlx::query(&sql).bind(&row.key).bind(&row.id).bind(&row.name).bind(row.data.to_string()).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every row of one kind, by key.
    pub async fn list(self, kind: SeedKind) -> Result<Vec<ScaffoldingRow>, StoreError> {
        let (table, key) = table(kind);
        let sql = format!("SELECT {key} AS key, id, name, data FROM {table} ORDER BY {key}");
        Ok(sqlx::query_as(&sql).fetch_all(self.store.catalogue.pool()).await?)
    }

    async fn row(self, kind: SeedKind, key: Option<&str>) -> Result<Option<ScaffoldingRow>, StoreError> {
        let Some(key) = key else { return Ok(None) };
        let (table, column) = table(kind);
        let sql = format!("SELECT {column} AS key, id, name, data FROM {table} WHERE {column} = $1");
        Ok(sqlx::query_as(&sql).bind(key).fetch_optional(self.store.catalogue.pool()).await?)
    }

    /// Refuses keys named explicitly (CLI flags, API query) that the catalogue does not know.
    pub async fn check_keys(self, keys: &ScaffoldingKeys) -> Result<(), StoreError> {
        require_known(keys, &self.reference(keys).await?)
    }

    /// What the catalogue knows about these keys; unknown keys give `None` parts.
    pub async fn reference(self, keys: &ScaffoldingKeys) -> Result<Reference, StoreError> {
        let persona = self.row(SeedKind::Persona, keys.persona.as_deref()).await?;
        let arc = self.row(SeedKind::EmotionalArc, keys.emotional_arc.as_deref()).await?;
        let topic = self.row(SeedKind::TrainingTopic, keys.training_topic.as_deref()).await?;
        let template = self.row(SeedKind::Template, keys.emotional_arc.as_deref()).await?;
        Ok(Reference {
            persona: persona.map(|r| Persona::from_row(r.id(), &r.key, &r.name, &r.data())),
            emotional_arc: arc.map(|r| EmotionalArc::from_row(r.id(), &r.key, &r.name, &r.data())),
            training_topic: topic.map(|r| TrainingTopic::from_row(r.id(), &r.key, &r.name, &r.data())),
            template: template.map(|r| Template::from_row(&r.data())),
        })
    }
}

/// Refuses each key of `explicit` that `reference` — looked up with those
/// keys winning — did not find.
pub(crate) fn require_known(explicit: &ScaffoldingKeys, reference: &Reference) -> Result<(), StoreError> {
    for (kind, field, key, found) in [
        (SeedKind::Persona, "persona_key", &explicit.persona, reference.persona.is_some()),
        (SeedKind::EmotionalArc, "emotional_arc_key", &explicit.emotional_arc, reference.emotional_arc.is_some()),
        (SeedKind::TrainingTopic, "topic_key", &explicit.training_topic, reference.training_topic.is_some()),
    ] {
        if let (Some(key), false) = (key, found) {
            let hint = format!("no {} {key:?} in the catalogue; load the scaffolding seeds first (`lora-files scaffolding load`)", kind.as_str());
            return Err(StoreError::invalid(field, hint));
        }
    }
    Ok(())
}
