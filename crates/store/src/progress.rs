//! What long work tells whoever runs it: the phase it is in, conversations
//! done of a total and bytes written, and whether to stop before committing.
//! Background jobs ([`crate::jobs`]) pass one to the services they call.

use crate::StoreError;

/// Reports from a long change; every method is cheap (no I/O): the caller
/// keeps counters and writes them out on its own schedule.
pub trait Progress: Send + Sync {
    /// A new phase (`rendering`, `committing`, `compacting`, `enriching`).
    fn phase(&self, phase: &'static str);
    /// `conversations` more done, `bytes` more written.
    fn advanced(&self, conversations: u64, bytes: u64);
    /// `Err(StoreError::Cancelled)` when the work should stop now, leaving
    /// nothing behind; asked between conversations and before a commit.
    fn check(&self) -> Result<(), StoreError>;
}

/// Reports to `progress` when there is one.
pub(crate) fn phase(progress: Option<&dyn Progress>, phase: &'static str) {
    if let Some(progress) = progress {
        progress.phase(phase);
    }
}

pub(crate) fn advanced(progress: Option<&dyn Progress>, conversations: u64, bytes: u64) {
    if let Some(progress) = progress {
        progress.advanced(conversations, bytes);
    }
}

pub(crate) fn check(progress: Option<&dyn Progress>) -> Result<(), StoreError> {
    progress.map_or(Ok(()), Progress::check)
}
