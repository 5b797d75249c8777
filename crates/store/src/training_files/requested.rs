//! Every problem with the conversation ids of a create or add, in one
//! answer: malformed and repeated ids, unknown or unfinished conversations,
//! and conversations already in the file.

use super::{check_ids, TrainingFiles};
use crate::ids::{requested, IdProblem};
use crate::StoreError;

impl TrainingFiles<'_> {
    /// The ids in canonical form when they are well formed; otherwise every
    /// problem of the request, including what the well-formed ids name.
    pub(super) async fn checked_ids(self, user: &str, file_id: Option<&str>, raw: &[String]) -> Result<Vec<String>, StoreError> {
        match check_ids(raw) {
            Err(StoreError::RequestedIds(mut problems)) => {
                let (valid, _) = requested(raw);
                problems.extend(self.problems_of(user, file_id, &valid).await?);
                problems.sort_by_key(|p| p.index);
                Err(StoreError::RequestedIds(problems))
            }
            checked => checked,
        }
    }

    /// Why each of these (well-formed, distinct) ids cannot join the file:
    /// already in it, unknown, not enriched.
    pub(super) async fn problems_of(self, user: &str, file_id: Option<&str>, ids: &[(usize, String)]) -> Result<Vec<IdProblem>, StoreError> {
        let all: Vec<String> = ids.iter().map(|(_, id)| id.clone()).collect();
        let present = match file_id {
            Some(file_id) => self.present(user, file_id, "conversation_id", &all).await?,
            None => Default::default(),
        };
        let mut problems = Vec::new();
        let mut rest = Vec::with_capacity(ids.len());
        for (index, id) in ids {
            if present.contains(id) {
                problems.push(IdProblem { index: *index, conversation_id: id.clone(), reason: "already_in_file", enrichment_status: None });
            } else {
                rest.push(id.clone());
            }
        }
        match self.eligible(user, &rest).await {
            Ok(_) => {}
            Err(StoreError::Ineligible(refused)) => {
                let index_of: std::collections::HashMap<&str, usize> = ids.iter().map(|(i, id)| (id.as_str(), *i)).collect();
                problems.extend(refused.into_iter().map(|r| IdProblem {
                    index: index_of[r.conversation_id.as_str()],
                    conversation_id: r.conversation_id,
                    reason: r.reason,
                    enrichment_status: r.enrichment_status,
                }));
            }
            Err(error) => return Err(error),
        }
        problems.sort_by_key(|p| p.index);
        Ok(problems)
    }
}
