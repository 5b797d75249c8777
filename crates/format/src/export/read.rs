//! Reading an export's inputs: enriched conversations and full files as the
//! build reads them, and JSONL files (a build's pairs, grouped back into
//! their conversations); each file's conversations rendered by the worker
//! that read them.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::render::{render_export_fragment, ExportFragment, RenderSettings};
use super::ExportError;
use crate::diagnostics::Diagnostic;
use crate::input::{self, FileKind, Mode, ReadFailure};
use crate::model::Conversation;
use crate::render::line_id_suffix;
use crate::value::{Map, Value};

/// Conversations rendered at a time by one thread of a JSONL input.
const JSONL_CHUNK: usize = 64;

/// Files as given (a JSONL among them), folders recursively to their `*.json` files.
pub fn collect_inputs(inputs: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    crate::io::collect_input_files(inputs)
}

/// One input file's conversations, rendered.
pub struct RenderedFile {
    pub fragments: Vec<ExportFragment>,
    pub bytes: u64,
}

pub fn read_and_render(file: &Path, settings: &RenderSettings) -> Result<RenderedFile, ExportError> {
    if input::looks_like_jsonl(file) {
        return read_and_render_jsonl(file, settings);
    }
    let mut fragments = Vec::new();
    let read = input::read_file(file, Mode::Build, |conversation| {
        let suffix = line_id_suffix(&conversation.conversation_id, |_| false);
        fragments.push(render_export_fragment(&conversation, settings, Some(&suffix)));
        Ok::<(), ExportError>(())
    });
    let report = read.map_err(|failure| match failure {
        ReadFailure::Io { source, .. } => ExportError::Io { path: file.to_owned(), source },
        ReadFailure::Sink(error) => error,
    })?;
    if report.findings.has_errors() {
        let errors = report.findings.into_iter().filter(Diagnostic::is_error).collect();
        return Err(ExportError::Invalid { path: file.to_owned(), errors });
    }
    match report.kind {
        Some(FileKind::Jsonl) => {
            let conversations = jsonl_conversations(file)?;
            Ok(RenderedFile { fragments: render_in_parallel(&conversations, settings), bytes: report.bytes })
        }
        Some(kind @ FileKind::Raw) => Err(ExportError::WrongKind { path: file.to_owned(), kind }),
        _ => Ok(RenderedFile { fragments, bytes: report.bytes }),
    }
}

/// A JSONL file named as one: read once, each line parsed once, checked
/// and grouped in the same pass.
fn read_and_render_jsonl(file: &Path, settings: &RenderSettings) -> Result<RenderedFile, ExportError> {
    let text = std::fs::read(file).map_err(|source| ExportError::Io { path: file.to_owned(), source })?;
    let mut groups = JsonlGroups::default();
    // Only errors stop an export, so only they are placed.
    let findings = input::validate_jsonl_text(&text, Diagnostic::is_error, |record| groups.add(record));
    if findings.has_errors() {
        let errors = findings.into_iter().filter(Diagnostic::is_error).collect();
        return Err(ExportError::Invalid { path: file.to_owned(), errors });
    }
    Ok(RenderedFile { fragments: render_in_parallel(&groups.into_conversations(), settings), bytes: text.len() as u64 })
}

/// A JSONL file (already validated) as conversations: its lines grouped by
/// `conversation_id` in the order each first appears. The pairs keep their
/// line ids; scaffolding and scores come from the pairs, as for an enriched file.
pub fn jsonl_conversations(file: &Path) -> Result<Vec<Conversation>, ExportError> {
    let text = std::fs::read(file).map_err(|source| ExportError::Io { path: file.to_owned(), source })?;
    let mut groups = JsonlGroups::default();
    for line in text.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(Value::Object(record)) = serde_json::from_slice::<Value>(line) else { continue };
        if record.contains_key("_meta") {
            continue;
        }
        groups.add(record);
    }
    Ok(groups.into_conversations())
}

/// JSONL records grouped by `conversation_id`, in the order each first appears.
#[derive(Default)]
struct JsonlGroups {
    groups: Vec<(String, Vec<Value>)>,
    index: HashMap<String, usize>,
}

impl JsonlGroups {
    fn add(&mut self, record: Map<String, Value>) {
        let id = record.get("conversation_id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let groups = &mut self.groups;
        let slot = *self.index.entry(id.clone()).or_insert_with(|| {
            groups.push((id, Vec::new()));
            groups.len() - 1
        });
        self.groups[slot].1.push(Value::Object(record));
    }

    fn into_conversations(self) -> Vec<Conversation> {
        self.groups.into_iter().map(|(id, pairs)| conversation_of_lines(id, pairs)).collect()
    }
}

/// One conversation's JSONL lines (parsed, in order) as a conversation whose
/// pairs keep their line ids: what a JSONL input and a stored version's JSONL
/// are exported from, so both give the same bytes.
pub fn conversation_of_lines(conversation_id: String, pairs: Vec<Value>) -> Conversation {
    let mut dataset = Map::new();
    dataset.insert("dataset_name".into(), format!("fp_conversation_{conversation_id}").into());
    let mut document = Map::new();
    document.insert("dataset_metadata".into(), Value::Object(dataset));
    document.insert("training_pairs".into(), Value::Array(pairs));
    Conversation { conversation_id, ..Conversation::from_enriched(document) }
}

/// Renders conversations on the machine's threads, in order.
fn render_in_parallel(conversations: &[Conversation], settings: &RenderSettings) -> Vec<ExportFragment> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let chunks: Vec<&[Conversation]> = conversations.chunks(JSONL_CHUNK).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, Vec<ExportFragment>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut rendered = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(chunk) = chunks.get(i) else { return rendered };
                        rendered.push((i, chunk.iter().map(|c| render_export_fragment(c, settings, None)).collect()));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|worker| worker.join().expect("rendering does not panic")).collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().flat_map(|(_, fragments)| fragments).collect()
}
