//! Scaffolding reference data as enrichment reads it: personas, emotional
//! arcs, training topics and templates, built from the seed rows (NDJSON
//! objects) the catalogue keeps.

use crate::value::{Map, Value};

fn text(row: &Value, key: &str) -> Option<String> {
    row.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// A stable id for a seed row that carries none: the same kind and key
/// always give the same UUID.
pub fn derived_id(kind: &str, key: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("lora-files:{kind}:{key}").as_bytes()).to_string()
}

/// Which seed table a row belongs to, by its key field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedKind {
    Persona,
    EmotionalArc,
    TrainingTopic,
    Template,
}

impl SeedKind {
    /// The kind of an NDJSON seed row, from the key field it carries.
    pub fn of_row(row: &Value) -> Option<Self> {
        let has = |key| text(row, key).is_some();
        if has("persona_key") {
            Some(Self::Persona)
        } else if has("arc_key") {
            Some(Self::EmotionalArc)
        } else if has("topic_key") {
            Some(Self::TrainingTopic)
        } else if has("emotional_arc_type") && has("category") {
            Some(Self::Template)
        } else {
            None
        }
    }

    /// The field holding the row's key.
    pub fn key_field(self) -> &'static str {
        match self {
            Self::Persona => "persona_key",
            Self::EmotionalArc => "arc_key",
            Self::TrainingTopic => "topic_key",
            Self::Template => "emotional_arc_type",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Persona => "persona",
            Self::EmotionalArc => "emotional_arc",
            Self::TrainingTopic => "training_topic",
            Self::Template => "template",
        }
    }
}

/// A seed row made ready for the catalogue: kind, key, id and display name.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedRow {
    pub kind: SeedKind,
    pub key: String,
    pub id: String,
    pub name: String,
    pub data: Value,
}

impl SeedRow {
    /// Reads one NDJSON row; the message says what is missing.
    pub fn from_value(data: Value) -> Result<Self, String> {
        let kind = SeedKind::of_row(&data)
            .ok_or("the row has none of persona_key, arc_key, topic_key or (emotional_arc_type + category)")?;
        let key = text(&data, kind.key_field()).expect("of_row checked the key");
        let name_field = if kind == SeedKind::Template { "template_name" } else { "name" };
        let name = match (text(&data, name_field), kind) {
            (Some(name), _) => name,
            (None, SeedKind::Template) => text(&data, "category").expect("of_row checked the category"),
            (None, _) => return Err(format!("the row for {key:?} has no name")),
        };
        let id = text(&data, "id").unwrap_or_else(|| derived_id(kind.as_str(), &key));
        Ok(Self { kind, key, id, name, data })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Persona {
    pub id: String,
    pub key: String,
    pub name: String,
    pub archetype: Option<String>,
    pub demographics: Value,
    pub financial_background: Value,
}

impl Persona {
    pub fn from_row(id: &str, key: &str, name: &str, data: &Value) -> Self {
        Self {
            id: id.to_owned(),
            key: key.to_owned(),
            name: name.to_owned(),
            archetype: text(data, "archetype"),
            demographics: data.get("demographics").cloned().unwrap_or(Value::Null),
            financial_background: data.get("financial_background").cloned().unwrap_or(Value::Null),
        }
    }

    /// `"<name> - <archetype>"`, the database's word on who the client is.
    pub fn client_persona(&self) -> String {
        format!("{} - {}", self.name, self.archetype.as_deref().unwrap_or("Client"))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EmotionalArc {
    pub id: String,
    pub key: String,
    pub name: String,
    pub starting_emotion: Option<String>,
    pub ending_emotion: Option<String>,
}

impl EmotionalArc {
    pub fn from_row(id: &str, key: &str, name: &str, data: &Value) -> Self {
        Self {
            id: id.to_owned(),
            key: key.to_owned(),
            name: name.to_owned(),
            starting_emotion: text(data, "starting_emotion"),
            ending_emotion: text(data, "ending_emotion"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrainingTopic {
    pub id: String,
    pub key: String,
    pub name: String,
    pub complexity_level: Option<String>,
}

impl TrainingTopic {
    pub fn from_row(id: &str, key: &str, name: &str, data: &Value) -> Self {
        Self { id: id.to_owned(), key: key.to_owned(), name: name.to_owned(), complexity_level: text(data, "complexity_level") }
    }
}

/// A prompt template, found by the conversation's emotional arc: its
/// category prefixes pair ids; its skills (when it lists real ones) become
/// `demonstrates_skills`.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub name: Option<String>,
    pub category: String,
    pub skills: Option<Vec<String>>,
}

impl Template {
    pub fn from_row(data: &Value) -> Self {
        let skills = ["demonstrates_skills", "skills"].iter().find_map(|key| {
            let list: Vec<String> = data.get(key)?.as_array()?.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect();
            (!list.is_empty()).then_some(list)
        });
        Self { name: text(data, "template_name"), category: text(data, "category").unwrap_or_default(), skills }
    }
}

/// What the catalogue knows about a conversation's scaffolding.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reference {
    pub persona: Option<Persona>,
    pub emotional_arc: Option<EmotionalArc>,
    pub training_topic: Option<TrainingTopic>,
    pub template: Option<Template>,
}

/// `client_background` (spec `enrichment.md` §3c): demographics (an object:
/// "Age N", gender, location, family status; or a string as-is) and the
/// financial background (a string as-is, an object as JSON), joined with
/// "; ". Without a persona or any part: "Client profile: <client_persona>".
pub fn client_background(persona: Option<&Persona>, client_persona: &str) -> String {
    let mut parts = Vec::new();
    if let Some(persona) = persona {
        match &persona.demographics {
            Value::Object(demographics) => {
                let mut pieces = Vec::new();
                if let Some(age) = demographics.get("age").filter(|a| !a.is_null()) {
                    pieces.push(format!("Age {}", age.as_str().map_or_else(|| age.to_string(), str::to_owned)));
                }
                for key in ["gender", "location", "family_status"] {
                    if let Some(value) = demographics.get(key).and_then(Value::as_str) {
                        pieces.push(value.to_owned());
                    }
                }
                if !pieces.is_empty() {
                    parts.push(pieces.join(", "));
                }
            }
            Value::String(demographics) if !demographics.is_empty() => parts.push(demographics.clone()),
            _ => {}
        }
        match &persona.financial_background {
            Value::String(background) if !background.is_empty() => parts.push(background.clone()),
            object @ Value::Object(_) => parts.push(object.to_string()),
            _ => {}
        }
    }
    if parts.is_empty() {
        format!("Client profile: {client_persona}")
    } else {
        parts.join("; ")
    }
}

/// The nine `input_parameters` fields (spec `enrichment.md` §2.2), from the
/// catalogue where it knows a part and from the file's own block otherwise;
/// an unknown part gives empty strings. `None` when nothing is known at all.
pub fn input_parameters(reference: &Reference, block: Option<&Map<String, Value>>) -> Option<Map<String, Value>> {
    let from_block = |key: &str| block.and_then(|b| b.get(key)).and_then(Value::as_str).unwrap_or_default().to_owned();
    let part = |known: Option<(&str, &str, &str)>, prefix: &str| -> [String; 3] {
        match known {
            Some((id, key, name)) => [id.to_owned(), key.to_owned(), name.to_owned()],
            None => [from_block(&format!("{prefix}_id")), from_block(&format!("{prefix}_key")), from_block(&format!("{prefix}_name"))],
        }
    };
    let persona = part(reference.persona.as_ref().map(|p| (p.id.as_str(), p.key.as_str(), p.name.as_str())), "persona");
    let arc = part(reference.emotional_arc.as_ref().map(|a| (a.id.as_str(), a.key.as_str(), a.name.as_str())), "emotional_arc");
    let topic = part(reference.training_topic.as_ref().map(|t| (t.id.as_str(), t.key.as_str(), t.name.as_str())), "training_topic");
    if [&persona, &arc, &topic].iter().all(|p| p.iter().all(String::is_empty)) {
        return None;
    }
    let mut map = Map::new();
    for (prefix, [id, key, name]) in [("persona", persona), ("emotional_arc", arc), ("training_topic", topic)] {
        map.insert(format!("{prefix}_id"), id.into());
        map.insert(format!("{prefix}_key"), key.into());
        map.insert(format!("{prefix}_name"), name.into());
    }
    Some(map)
}

#[cfg(test)]
mod tests {
    use crate::json;

    use super::*;

    fn persona(demographics: Value, financial_background: Value) -> Persona {
        Persona { id: "i".into(), key: "k".into(), name: "N".into(), archetype: None, demographics, financial_background }
    }

    /// The five cases of spec `enrichment.md` §3c, exactly.
    #[test]
    fn client_background_by_the_spec() {
        let cases = [
            (
                Some(persona(
                    json!({"age": 37, "gender": "male", "location": "Urban/Suburban", "family_status": "single or married without kids"}),
                    json!("High earner with complex compensation"),
                )),
                "",
                "Age 37, male, Urban/Suburban, single or married without kids; High earner with complex compensation",
            ),
            (Some(persona(json!("Age 35, female, Urban"), json!("Middle income"))), "", "Age 35, female, Urban; Middle income"),
            (Some(persona(json!({"age": 40}), json!("Some background"))), "", "Age 40; Some background"),
            (None, "Fallback Name", "Client profile: Fallback Name"),
            (Some(persona(json!({}), Value::Null)), "X", "Client profile: X"),
        ];
        for (persona, client_persona, expected) in cases {
            let background = client_background(persona.as_ref(), client_persona);
            assert_eq!(background, expected);
            assert!(!background.contains("[object Object]"));
        }
    }

    #[test]
    fn age_zero_is_kept_and_object_backgrounds_are_json() {
        let p = persona(json!({"age": 0, "gender": 5, "location": "Rural"}), json!({"income": "low"}));
        assert_eq!(client_background(Some(&p), "X"), r#"Age 0, Rural; {"income":"low"}"#);
        let p = persona(json!({"age": null}), json!(["not", "a", "string"]));
        assert_eq!(client_background(Some(&p), "X"), "Client profile: X");
    }

    #[test]
    fn seed_rows_are_recognised_by_their_key_field() {
        let row = SeedRow::from_value(json!({"persona_key": "overwhelmed_avoider", "name": "Marcus Chen"})).unwrap();
        assert_eq!((row.kind, row.key.as_str(), row.name.as_str()), (SeedKind::Persona, "overwhelmed_avoider", "Marcus Chen"));
        assert_eq!(row.id, derived_id("persona", "overwhelmed_avoider"));
        let row = SeedRow::from_value(json!({"emotional_arc_type": "shame_to_acceptance", "category": "therapeutic", "id": "x"})).unwrap();
        assert_eq!((row.kind, row.name.as_str(), row.id.as_str()), (SeedKind::Template, "therapeutic", "x"));
        assert!(SeedRow::from_value(json!({"topic_key": "t"})).unwrap_err().contains("no name"));
        assert!(SeedRow::from_value(json!({"name": "n"})).is_err());
    }

    #[test]
    fn input_parameters_prefer_the_catalogue_and_fill_from_the_block() {
        let reference = Reference {
            persona: Some(Persona::from_row("p1", "pragmatic_optimist", "David Chen", &json!({}))),
            ..Reference::default()
        };
        let block = json!({"persona_key": "other", "emotional_arc_id": "a1", "emotional_arc_key": "shame_to_acceptance", "emotional_arc_name": "Shame → Acceptance"});
        let parameters = input_parameters(&reference, block.as_object()).unwrap();
        assert_eq!(
            Value::Object(parameters),
            json!({"persona_id": "p1", "persona_key": "pragmatic_optimist", "persona_name": "David Chen",
                "emotional_arc_id": "a1", "emotional_arc_key": "shame_to_acceptance", "emotional_arc_name": "Shame → Acceptance",
                "training_topic_id": "", "training_topic_key": "", "training_topic_name": ""})
        );
        assert_eq!(input_parameters(&Reference::default(), None), None);
    }
}
