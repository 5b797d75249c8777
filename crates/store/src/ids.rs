//! Ids as users type them: a UUID in any case, with or without hyphens, in
//! braces or as `urn:uuid:`, is one id — stored and answered in lower case.

/// The canonical form (lower-case, hyphenated) of a UUID written any of the
/// ways people paste them; `None` when `text` is not a UUID.
pub fn canonical_uuid(text: &str) -> Option<String> {
    let text = text.trim();
    let text = match text.get(..9) {
        Some(prefix) if prefix.eq_ignore_ascii_case("urn:uuid:") => &text[9..],
        _ => text,
    };
    // `parse_str` takes the simple, hyphenated and braced forms in either case.
    uuid::Uuid::parse_str(text).ok().map(|id| id.hyphenated().to_string())
}

/// [`canonical_uuid`], or a 400-class error naming `field`.
pub fn canonical_id(field: &str, text: &str) -> Result<String, crate::StoreError> {
    canonical_uuid(text).ok_or_else(|| crate::StoreError::invalid(field, format!("{text:?} is not a UUID")))
}

/// The id as stored when it is a UUID written another way; other text is
/// kept as it is (and then matches nothing).
pub fn canonical_or_same(text: &str) -> String {
    canonical_uuid(text).unwrap_or_else(|| text.to_owned())
}

/// One thing wrong with one id of a request's `conversation_ids`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdProblem {
    /// Its position in `conversation_ids`.
    pub index: usize,
    /// As sent when it is not a UUID; canonical (lower case) otherwise.
    pub conversation_id: String,
    /// `invalid_id`, `duplicate`, `not_found`, `not_completed`,
    /// `no_enriched_file` or `already_in_file`.
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrichment_status: Option<String>,
}

impl IdProblem {
    /// Whether the request itself is malformed (rather than naming conversations that cannot be used).
    pub fn is_malformed(&self) -> bool {
        matches!(self.reason, "invalid_id" | "duplicate")
    }

    /// For people, as a field error says it.
    pub fn message(&self) -> String {
        match self.reason {
            "invalid_id" => format!("{:?} is not a UUID", self.conversation_id),
            "duplicate" => format!("{} is named twice", self.conversation_id),
            "not_found" => format!("{}: no such conversation", self.conversation_id),
            "not_completed" => format!("{} is not enriched ({})", self.conversation_id, self.enrichment_status.as_deref().unwrap_or("?")),
            "no_enriched_file" => format!("{} has no enriched file", self.conversation_id),
            "already_in_file" => format!("{} is already in the training file", self.conversation_id),
            other => format!("{}: {other}", self.conversation_id),
        }
    }
}

/// A request's ids in canonical form with their positions, each once, and
/// every id that is not a UUID or repeats an earlier one (an id and its
/// upper-case copy are the same id).
pub fn requested(raw: &[String]) -> (Vec<(usize, String)>, Vec<IdProblem>) {
    let mut seen = std::collections::HashSet::with_capacity(raw.len());
    let (mut valid, mut problems) = (Vec::with_capacity(raw.len()), Vec::new());
    for (index, text) in raw.iter().enumerate() {
        match canonical_uuid(text) {
            None => problems.push(IdProblem { index, conversation_id: text.clone(), reason: "invalid_id", enrichment_status: None }),
            Some(id) if !seen.insert(id.clone()) => problems.push(IdProblem { index, conversation_id: id, reason: "duplicate", enrichment_status: None }),
            Some(id) => valid.push((index, id)),
        }
    }
    (valid, problems)
}

#[cfg(test)]
mod tests {
    use super::canonical_uuid;

    #[test]
    fn every_written_form_of_a_uuid_is_one_id() {
        let canonical = "2e620831-0bf3-4c1a-9d4e-0123456789ab";
        for form in [
            canonical,
            "2E620831-0BF3-4C1A-9D4E-0123456789AB",
            "2e6208310bf34c1a9d4e0123456789ab",
            "{2e620831-0bf3-4c1a-9d4e-0123456789ab}",
            "urn:uuid:2e620831-0bf3-4c1a-9d4e-0123456789ab",
            "URN:UUID:2E620831-0BF3-4C1A-9D4E-0123456789AB",
        ] {
            assert_eq!(canonical_uuid(form).as_deref(), Some(canonical), "{form}");
        }
        for bad in ["", "not-a-uuid", "2e620831-0bf3-4c1a-9d4e-0123456789a", "2e620831-0bf3-4c1a-9d4e-0123456789ab\0", "urn:uuid:"] {
            assert_eq!(canonical_uuid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_id_and_its_upper_case_copy_are_duplicates() {
        let ids = ["2e620831-0bf3-4c1a-9d4e-0123456789ab", "nope", "2E620831-0BF3-4C1A-9D4E-0123456789AB"].map(String::from);
        let (valid, problems) = super::requested(&ids);
        assert_eq!(valid, [(0, ids[0].clone())]);
        let reasons: Vec<(usize, &str)> = problems.iter().map(|p| (p.index, p.reason)).collect();
        assert_eq!(reasons, [(1, "invalid_id"), (2, "duplicate")]);
    }
}
