//! `build`: enriched conversations and full files in, a full JSON and a JSONL
//! out, streamed through temporary files and renamed into place at the end so
//! a failed build leaves no partial output.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Condvar, Mutex};

use chrono::{DateTime, Utc};
use serde_json::Value;
use tempfile::NamedTempFile;

use crate::diagnostics::Diagnostic;
use crate::input::{self, FileKind, Mode, ReadFailure};
use crate::model::Conversation;
use crate::quality::{QualitySummary, Totals};
use crate::render::{self, FileHeader, Fragment};

/// Files larger than this are read by the writing thread itself, streamed,
/// instead of being prepared whole by a worker.
const PREPARE_LIMIT: u64 = 16 * 1024 * 1024;

/// How many files workers may prepare ahead of the writer: bounds memory.
const WINDOW_PER_WORKER: usize = 4;

/// Files with warnings (or notices) named in the summary; the rest are only counted.
const KEPT_WARNINGS: usize = 20;

#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub name: String,
    pub description: Option<String>,
    pub target_model: Option<String>,
    pub vertical: Option<String>,
    /// Write the original's `_meta` first line in the JSONL.
    pub jsonl_meta: bool,
    /// The build's clock: same inputs and same `now` give the same bytes.
    pub now: DateTime<Utc>,
}

#[derive(Debug)]
pub struct BuildSummary {
    pub json_path: PathBuf,
    pub jsonl_path: PathBuf,
    pub conversations: usize,
    pub training_pairs: usize,
    pub turns: usize,
    pub quality: QualitySummary,
    pub input_bytes: u64,
    pub json_bytes: u64,
    pub jsonl_bytes: u64,
    pub warning_count: usize,
    /// The first files with warnings, and how many each has (`validate` lists them).
    pub files_with_warnings: Vec<(PathBuf, usize)>,
    /// Inputs that disagree with the first input on the consultant profile or vertical.
    pub notices: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {} error(s)", path.display(), errors.len())]
    Invalid { path: PathBuf, errors: Vec<Diagnostic> },
    #[error("{}: {kind:?} files cannot be built from; give enriched conversations or full JSON files", path.display())]
    WrongKind { path: PathBuf, kind: FileKind },
    #[error("conversation {conversation_id} appears twice: in {} and in {}", first.display(), second.display())]
    DuplicateConversation { conversation_id: String, first: PathBuf, second: PathBuf },
    #[error("no conversations in the inputs")]
    NoConversations,
    #[error("no input has a consultant_profile")]
    NoConsultantProfile,
    #[error("no input states a vertical; pass --vertical")]
    NoVertical,
    #[error("invalid name {0:?}: it names the output files, so it must not be empty, contain '/' or '\\', or start with '.'")]
    BadName(String),
}

/// Progress after each input file.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub files_done: usize,
    pub files_total: usize,
    pub bytes_done: u64,
}

/// Everything a build learns as it goes, in constant memory per conversation.
struct Assembly {
    body: BufWriter<NamedTempFile>,
    jsonl: BufWriter<NamedTempFile>,
    totals: Totals,
    /// Conversation id → the file it came from (to name both on a duplicate).
    seen: HashMap<String, PathBuf>,
    short_ids: HashSet<String>,
    consultant_profile: Option<Value>,
    vertical: Option<String>,
    target_model: Option<String>,
    notices: Vec<String>,
}

impl Assembly {
    fn add(&mut self, conversation: Conversation, source: &Path) -> Result<(), BuildError> {
        let (info, fragment) = render_short(conversation);
        self.add_rendered(info, fragment, source)
    }

    /// Adds a conversation rendered with the short line-id suffix. In the rare
    /// case another conversation of the file has the same 8 characters, the
    /// source is read again and this conversation re-rendered with its full id.
    fn add_rendered(&mut self, info: ConversationInfo, mut fragment: Fragment, source: &Path) -> Result<(), BuildError> {
        let id = &info.conversation_id;
        if let Some(first) = self.seen.get(id) {
            return Err(BuildError::DuplicateConversation { conversation_id: id.clone(), first: first.clone(), second: source.to_owned() });
        }
        self.seen.insert(id.clone(), source.to_owned());
        self.note_profile(info.consultant_profile.as_ref(), source);
        self.note_vertical(info.vertical.as_deref(), source);
        let suffix = render::line_id_suffix(id, |short| !self.short_ids.insert(short.to_owned()));
        if suffix.len() > 8 {
            fragment = rerender(source, id, &suffix)?;
        }
        let io_error = |source| BuildError::Io { path: PathBuf::from("(temporary output)"), source };
        self.body.write_all(render::fragment_separator(self.totals.conversations)).map_err(io_error)?;
        self.body.write_all(&fragment.json).map_err(io_error)?;
        self.jsonl.write_all(&fragment.jsonl).map_err(io_error)?;
        self.totals.add(&fragment.figures);
        Ok(())
    }

    /// What a carried-over full file says about the whole file.
    fn note_report(&mut self, report: &CheckedFile, file: &Path) -> Result<(), BuildError> {
        if report.kind != Some(FileKind::Full) {
            return Ok(());
        }
        let fields = &report.top;
        self.note_profile(fields.get("consultant_profile"), file);
        let metadata = fields.get("training_file_metadata");
        self.note_vertical(metadata.and_then(|m| m.get("vertical")).and_then(Value::as_str), file);
        if self.target_model.is_none() {
            self.target_model = metadata.and_then(|m| m.get("target_model")).and_then(Value::as_str).map(str::to_owned);
        }
        Ok(())
    }

    fn note_profile(&mut self, profile: Option<&Value>, source: &Path) {
        let Some(profile) = profile else { return };
        match &self.consultant_profile {
            None => self.consultant_profile = Some(profile.clone()),
            Some(first) if first != profile && self.notices.len() < KEPT_WARNINGS => self.notices.push(format!(
                "{}: its consultant_profile differs from the first input's; the first is used",
                source.display()
            )),
            Some(_) => {}
        }
    }

    fn note_vertical(&mut self, vertical: Option<&str>, source: &Path) {
        let Some(vertical) = vertical else { return };
        match &self.vertical {
            None => self.vertical = Some(vertical.to_owned()),
            Some(first) if first != vertical && self.notices.len() < KEPT_WARNINGS => {
                self.notices.push(format!("{}: vertical {vertical:?} differs from {first:?}; the first is used", source.display()))
            }
            Some(_) => {}
        }
    }
}

fn check_name(name: &str) -> Result<(), BuildError> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.contains(['/', '\\', '\0']) || trimmed.starts_with('.') {
        return Err(BuildError::BadName(name.to_owned()));
    }
    Ok(())
}

/// Builds `out_dir/NAME.json` and `out_dir/NAME.jsonl` from `inputs`.
pub fn build(
    inputs: &[PathBuf],
    out_dir: &Path,
    options: &BuildOptions,
    mut on_progress: impl FnMut(Progress),
) -> Result<BuildSummary, BuildError> {
    check_name(&options.name)?;
    let io_at = |path: &Path| {
        let path = path.to_owned();
        move |source| BuildError::Io { path, source }
    };
    let files = input::collect_input_files(inputs).map_err(io_at(Path::new("inputs")))?;
    std::fs::create_dir_all(out_dir).map_err(io_at(out_dir))?;
    let temp = || NamedTempFile::new_in(out_dir).map(BufWriter::new).map_err(io_at(out_dir));
    let mut assembly = Assembly {
        body: temp()?,
        jsonl: temp()?,
        totals: Totals::default(),
        seen: HashMap::new(),
        short_ids: HashSet::new(),
        consultant_profile: None,
        vertical: options.vertical.clone(),
        target_model: options.target_model.clone(),
        notices: Vec::new(),
    };
    let (mut warning_count, mut files_with_warnings, mut input_bytes) = (0, Vec::new(), 0);

    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let window = workers * WINDOW_PER_WORKER;
    let next = AtomicUsize::new(0);
    let written = (Mutex::new(0usize), Condvar::new());
    std::thread::scope(|scope| -> Result<(), BuildError> {
        let (sender, receiver) = mpsc::sync_channel::<(usize, Prepared)>(window);
        for _ in 0..workers {
            let sender = sender.clone();
            let (next, written, files) = (&next, &written, &files);
            scope.spawn(move || loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= files.len() {
                    return;
                }
                let (lock, turn) = written;
                let mut done = lock.lock().expect("no panics while holding the lock");
                while index >= *done + window {
                    done = turn.wait(done).expect("no panics while holding the lock");
                }
                drop(done);
                if sender.send((index, prepare(&files[index]))).is_err() {
                    return; // the writer stopped on an error
                }
            });
        }
        drop(sender);

        let mut waiting = BTreeMap::new();
        let mut index = 0;
        while index < files.len() {
            while !waiting.contains_key(&index) {
                let (i, prepared) = receiver.recv().expect("workers send every index before they stop");
                waiting.insert(i, prepared);
            }
            let prepared = waiting.remove(&index).expect("checked above");
            let file = &files[index];
            let report = match prepared {
                Prepared::Ready { conversations, report } => {
                    for (info, fragment) in conversations {
                        assembly.add_rendered(info, fragment, file)?;
                    }
                    report
                }
                Prepared::Large => read_checked(file, |conversation| assembly.add(conversation, file))?,
                Prepared::Failed(error) => return Err(error),
            };
            assembly.note_report(&report, file)?;
            warning_count += report.warnings;
            if report.warnings > 0 && files_with_warnings.len() < KEPT_WARNINGS {
                files_with_warnings.push((file.clone(), report.warnings));
            }
            input_bytes += report.bytes;
            index += 1;
            *written.0.lock().expect("no panics while holding the lock") = index;
            written.1.notify_all();
            on_progress(Progress { files_done: index, files_total: files.len(), bytes_done: input_bytes });
        }
        Ok(())
    })
    .inspect_err(|_| {
        // Let waiting workers run out of files so the scope can end.
        next.store(usize::MAX / 2, Ordering::SeqCst);
        *written.0.lock().expect("no panics while holding the lock") = usize::MAX / 2;
        written.1.notify_all();
    })?;

    let totals = assembly.totals.clone();
    if totals.conversations == 0 {
        return Err(BuildError::NoConversations);
    }
    let header = FileHeader {
        file_name: options.name.trim().to_owned(),
        description: options.description.clone(),
        created: options.now,
        last_updated: options.now,
        target_model: assembly.target_model.clone(),
        vertical: assembly.vertical.clone().ok_or(BuildError::NoVertical)?,
        consultant_profile: assembly.consultant_profile.clone().ok_or(BuildError::NoConsultantProfile)?,
    };
    let stem = options.name.trim();
    let json_path = out_dir.join(format!("{stem}.json"));
    let jsonl_path = out_dir.join(format!("{stem}.jsonl"));

    let body = finish_temp(assembly.body, out_dir)?;
    let mut json = temp()?;
    json.write_all(&render::full_json_prefix(&header, &totals)).map_err(io_at(out_dir))?;
    copy_into(body, &mut json, out_dir)?;
    json.write_all(render::full_json_suffix(totals.conversations)).map_err(io_at(out_dir))?;
    let json = finish_temp(json, out_dir)?;

    let jsonl_body = finish_temp(assembly.jsonl, out_dir)?;
    let jsonl = if options.jsonl_meta {
        let mut jsonl = temp()?;
        jsonl.write_all(&render::jsonl_meta_line(&header.file_name, totals.training_pairs)).map_err(io_at(out_dir))?;
        copy_into(jsonl_body, &mut jsonl, out_dir)?;
        finish_temp(jsonl, out_dir)?
    } else {
        jsonl_body
    };

    let json_bytes = json.as_file().metadata().map_err(io_at(out_dir))?.len();
    let jsonl_bytes = jsonl.as_file().metadata().map_err(io_at(out_dir))?.len();
    json.persist(&json_path).map_err(|e| BuildError::Io { path: json_path.clone(), source: e.error })?;
    jsonl.persist(&jsonl_path).map_err(|e| BuildError::Io { path: jsonl_path.clone(), source: e.error })?;

    Ok(BuildSummary {
        json_path,
        jsonl_path,
        conversations: totals.conversations,
        training_pairs: totals.training_pairs,
        turns: totals.turns,
        quality: totals.quality(),
        input_bytes,
        json_bytes,
        jsonl_bytes,
        warning_count,
        files_with_warnings,
        notices: assembly.notices,
    })
}

/// What a worker made of one input file.
enum Prepared {
    Ready { conversations: Vec<(ConversationInfo, Fragment)>, report: CheckedFile },
    /// Too large to hold: the writer streams it itself.
    Large,
    Failed(BuildError),
}

/// What the writer needs to know of a file besides its conversations.
struct CheckedFile {
    kind: Option<FileKind>,
    warnings: usize,
    bytes: u64,
    top: serde_json::Map<String, Value>,
}

fn prepare(file: &Path) -> Prepared {
    match std::fs::metadata(file) {
        Ok(metadata) if metadata.len() > PREPARE_LIMIT => return Prepared::Large,
        Ok(_) => {}
        Err(source) => return Prepared::Failed(BuildError::Io { path: file.to_owned(), source }),
    }
    let mut conversations = Vec::new();
    let result = read_checked(file, |conversation| {
        conversations.push(render_short(conversation));
        Ok(())
    });
    match result {
        Ok(report) => Prepared::Ready { conversations, report },
        Err(error) => Prepared::Failed(error),
    }
}

/// What the writer needs of a conversation once it is rendered (the parsed
/// pairs are dropped by the worker that read them).
struct ConversationInfo {
    conversation_id: String,
    consultant_profile: Option<Value>,
    vertical: Option<String>,
}

fn render_short(conversation: Conversation) -> (ConversationInfo, Fragment) {
    let fragment = render::render_conversation_fragment(&conversation, &render::line_id_suffix(&conversation.conversation_id, |_| false));
    let info = ConversationInfo {
        conversation_id: conversation.conversation_id,
        consultant_profile: conversation.consultant_profile,
        vertical: conversation.vertical,
    };
    (info, fragment)
}

fn rerender(source: &Path, conversation_id: &str, suffix: &str) -> Result<Fragment, BuildError> {
    let mut fragment = None;
    read_checked(source, |conversation| {
        if conversation.conversation_id == conversation_id {
            fragment = Some(render::render_conversation_fragment(&conversation, suffix));
        }
        Ok(())
    })?;
    fragment.ok_or_else(|| BuildError::Io {
        path: source.to_owned(),
        source: io::Error::other(format!("conversation {conversation_id} is gone from the file while building")),
    })
}

/// Reads one input in build mode; a file with errors is a `BuildError::Invalid`.
fn read_checked(file: &Path, sink: impl FnMut(Conversation) -> Result<(), BuildError>) -> Result<CheckedFile, BuildError> {
    let report = input::read_file(file, Mode::Build, sink).map_err(|failure| match failure {
        ReadFailure::Io { source, .. } => BuildError::Io { path: file.to_owned(), source },
        ReadFailure::Sink(error) => error,
    })?;
    if report.findings.has_errors() {
        let errors = report.findings.into_iter().filter(Diagnostic::is_error).collect();
        return Err(BuildError::Invalid { path: file.to_owned(), errors });
    }
    if let Some(kind @ (FileKind::Jsonl | FileKind::Raw)) = report.kind {
        return Err(BuildError::WrongKind { path: file.to_owned(), kind });
    }
    Ok(CheckedFile { kind: report.kind, warnings: report.findings.warning_count(), bytes: report.bytes, top: report.top.fields })
}

/// Flushes a temporary file. No fsync: nothing reads these until the final
/// rename, which is what makes the outputs appear whole or not at all.
fn finish_temp(writer: BufWriter<NamedTempFile>, dir: &Path) -> Result<NamedTempFile, BuildError> {
    writer.into_inner().map_err(|e| BuildError::Io { path: dir.to_owned(), source: e.into_error() })
}

/// Appends a finished temporary file (the kernel copies; nothing passes through memory).
fn copy_into(mut from: NamedTempFile, to: &mut BufWriter<NamedTempFile>, dir: &Path) -> Result<(), BuildError> {
    let io_error = |source| BuildError::Io { path: dir.to_owned(), source };
    from.as_file_mut().rewind().map_err(io_error)?;
    to.flush().map_err(io_error)?;
    let target: &mut File = to.get_mut().as_file_mut();
    io::copy(from.as_file_mut(), target).map_err(io_error)?;
    Ok(())
}
