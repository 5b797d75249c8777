//! `build`: enriched conversations and full files in, a full JSON and a JSONL
//! out, streamed through temporary files and renamed into place at the end so
//! a failed build leaves no partial output.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Condvar, Mutex};

use chrono::{DateTime, Utc};
use tempfile::NamedTempFile;

use crate::batch::{BatchWriter, Chunk};
use crate::diagnostics::Diagnostic;
use crate::input::{self, FileKind, FileReport, Mode, ReadFailure};
use crate::model::Conversation;
use crate::quality::{QualitySummary, Totals};
use crate::render::{self, FileHeader, Fragment};
use crate::survey::{self, Contribution, FileFacts, Survey};
use crate::value::Value;

/// Files larger than this are read by the writing thread itself, streamed,
/// instead of being prepared whole by a worker.
const PREPARE_LIMIT: u64 = 16 * 1024 * 1024;

/// Files a worker takes at a time.
const BATCH: usize = 8;

/// How many batches workers may prepare ahead of the writer: bounds memory.
const WINDOW_PER_WORKER: usize = 2;

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
    /// Several inputs cannot be built from: each with its own error.
    #[error("{} inputs cannot be built from: {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    BadInputs(Vec<BuildError>),
    #[error("the inputs changed while building (the two passes over them disagree); nothing was written, run the build again")]
    InputsChanged,
    #[error("no conversations in the inputs")]
    NoConversations,
    #[error("no input has a consultant_profile")]
    NoConsultantProfile,
    #[error("no input states a vertical; pass --vertical")]
    NoVertical,
    #[error("invalid name {0:?}: it names the output files, so it must not be empty, contain '/' or '\\', or start with '.'")]
    BadName(String),
}

/// Progress after each input file, in each of the two passes.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub stage: Stage,
    pub files_done: usize,
    pub files_total: usize,
    /// Input bytes read in the writing stage (0 while counting).
    pub bytes_done: u64,
}

/// The two passes of a build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Counting what the header states (a light read of every input).
    Counting,
    /// Checking, rendering and writing every conversation.
    Writing,
}

/// What the header of the training file states besides its totals, taken
/// from the inputs in order (the first consultant profile and vertical win).
#[derive(Debug)]
struct HeaderFacts {
    consultant_profile: Option<Value>,
    vertical: Option<String>,
    target_model: Option<String>,
    /// Inputs that disagree with the first.
    notices: Vec<String>,
}

impl HeaderFacts {
    fn new(options: &BuildOptions) -> Self {
        Self { consultant_profile: None, vertical: options.vertical.clone(), target_model: options.target_model.clone(), notices: Vec::new() }
    }

    fn states_the_same_as(&self, other: &Self) -> bool {
        (&self.consultant_profile, &self.vertical, &self.target_model) == (&other.consultant_profile, &other.vertical, &other.target_model)
    }

    fn note_conversation(&mut self, profile: Option<&Value>, vertical: Option<&str>, source: &Path) {
        self.note_profile(profile, source);
        self.note_vertical(vertical, source);
    }

    /// What a carried-over full file says about the whole file.
    fn note_file(&mut self, facts: &FileFacts, source: &Path) {
        self.note_profile(facts.consultant_profile.as_ref(), source);
        self.note_vertical(facts.vertical.as_deref(), source);
        if self.target_model.is_none() {
            self.target_model.clone_from(&facts.target_model);
        }
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

/// The second pass: the outputs, written front to back behind a header that
/// the first pass computed, and everything the header states computed again.
struct Assembly {
    json: BatchWriter<NamedTempFile>,
    jsonl: BatchWriter<NamedTempFile>,
    totals: Totals,
    facts: HeaderFacts,
    /// Conversation id → the file it came from (to name both on a duplicate).
    seen: HashMap<String, PathBuf>,
    short_ids: HashSet<String>,
}

impl Assembly {
    fn add(&mut self, conversation: Conversation, plan: &LineIds, source: &Path) -> Result<(), BuildError> {
        let (info, fragment) = render_planned(conversation, plan);
        self.add_rendered(info, fragment, source)
    }

    /// Adds a conversation rendered with the line-id suffix the first pass
    /// planned; the suffix is chosen again here, and the two must agree.
    fn add_rendered(&mut self, info: ConversationInfo, fragment: Fragment, source: &Path) -> Result<(), BuildError> {
        let id = &info.conversation_id;
        if let Some(first) = self.seen.get(id) {
            return Err(BuildError::DuplicateConversation { conversation_id: id.clone(), first: first.clone(), second: source.to_owned() });
        }
        self.seen.insert(id.clone(), source.to_owned());
        self.facts.note_conversation(info.consultant_profile.as_ref(), info.vertical.as_deref(), source);
        let suffix = render::line_id_suffix(id, |short| !self.short_ids.insert(short.to_owned()));
        if suffix != info.line_suffix {
            return Err(BuildError::InputsChanged);
        }
        let io_error = |source| BuildError::Io { path: PathBuf::from("(temporary output)"), source };
        self.json.push(Chunk::Static(render::fragment_separator(self.totals.conversations))).map_err(io_error)?;
        self.json.push(Chunk::Owned(fragment.json)).map_err(io_error)?;
        self.jsonl.push(Chunk::Owned(fragment.jsonl)).map_err(io_error)?;
        self.totals.add(&fragment.figures);
        Ok(())
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
///
/// Two passes over the inputs: a light one for what the header states
/// (totals, profile, vertical), then the full one that checks, renders and
/// writes each conversation behind that header. The second recomputes what
/// the first found; should they differ (an input changed in between), the
/// build fails and nothing is written.
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
    let files = crate::io::collect_input_files(inputs).map_err(io_at(Path::new("inputs")))?;
    std::fs::create_dir_all(out_dir).map_err(io_at(out_dir))?;

    let (planned, facts, line_ids) = survey_inputs(&files, options, &mut on_progress)?;
    if planned.conversations == 0 {
        return Err(BuildError::NoConversations);
    }
    let header = FileHeader {
        file_name: options.name.trim().to_owned(),
        description: options.description.clone(),
        created: options.now,
        last_updated: options.now,
        target_model: facts.target_model.clone(),
        vertical: facts.vertical.clone().ok_or(BuildError::NoVertical)?,
        consultant_profile: facts.consultant_profile.clone().ok_or(BuildError::NoConsultantProfile)?,
    };

    // Created as any new file is (0666 less the umask, like the server's
    // objects), not 0600 as temporary files are by default.
    let temp = || output_temp_file(out_dir).map(BatchWriter::new).map_err(io_at(out_dir));
    let mut assembly = Assembly {
        json: temp()?,
        jsonl: temp()?,
        totals: Totals::default(),
        facts: HeaderFacts::new(options),
        seen: HashMap::new(),
        short_ids: HashSet::new(),
    };
    assembly.json.push(Chunk::Owned(render::full_json_prefix(&header, &planned))).map_err(io_at(out_dir))?;
    if options.jsonl_meta {
        let meta = render::jsonl_meta_line(&header.file_name, planned.training_pairs);
        assembly.jsonl.push(Chunk::Owned(meta)).map_err(io_at(out_dir))?;
    }
    let (mut warning_count, mut files_with_warnings, mut input_bytes) = (0, Vec::new(), 0);
    each_in_order(&files, |file| prepare(file, &line_ids), |index, prepared| {
        let file = &files[index];
        let report = match prepared {
            Prepared::Ready { conversations, report } => {
                for (info, fragment) in conversations {
                    assembly.add_rendered(info, fragment, file)?;
                }
                report
            }
            Prepared::Large => read_checked(file, |conversation| assembly.add(conversation, &line_ids, file))?,
            Prepared::Failed(error) => return Err(error),
        };
        assembly.facts.note_file(&report.facts, file);
        warning_count += report.warnings;
        if report.warnings > 0 && files_with_warnings.len() < KEPT_WARNINGS {
            files_with_warnings.push((file.clone(), report.warnings));
        }
        input_bytes += report.bytes;
        on_progress(Progress { stage: Stage::Writing, files_done: index + 1, files_total: files.len(), bytes_done: input_bytes });
        Ok(())
    })?;
    if assembly.totals != planned || !assembly.facts.states_the_same_as(&facts) {
        return Err(BuildError::InputsChanged);
    }
    let totals = assembly.totals;
    assembly.json.push(Chunk::Static(render::full_json_suffix(totals.conversations))).map_err(io_at(out_dir))?;
    let json = finish_temp(assembly.json, out_dir)?;
    let jsonl = finish_temp(assembly.jsonl, out_dir)?;

    let stem = options.name.trim();
    let json_path = out_dir.join(format!("{stem}.json"));
    let jsonl_path = out_dir.join(format!("{stem}.jsonl"));
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
        notices: facts.notices,
    })
}

/// The conversations whose JSONL line ids need their full conversation id:
/// those whose first 8 characters an earlier conversation of the file has.
/// Planned in the first pass, so the second renders each conversation once
/// (it used to read a source again for every such conversation).
#[derive(Debug, Default)]
struct LineIds {
    planned: HashSet<String>,
    short_taken: HashSet<String>,
    full: HashSet<String>,
}

impl LineIds {
    fn plan(&mut self, conversation_id: &str) {
        if !self.planned.insert(conversation_id.to_owned()) {
            return; // a duplicate, which the second pass reports with both its sources
        }
        let suffix = render::line_id_suffix(conversation_id, |short| !self.short_taken.insert(short.to_owned()));
        if suffix.len() > 8 {
            self.full.insert(conversation_id.to_owned());
        }
    }

    fn suffix(&self, conversation_id: &str) -> String {
        render::line_id_suffix(conversation_id, |_| self.full.contains(conversation_id))
    }
}

/// The first pass: what the header will state, and the line ids.
fn survey_inputs(files: &[PathBuf], options: &BuildOptions, on_progress: &mut impl FnMut(Progress)) -> Result<(Totals, HeaderFacts, LineIds), BuildError> {
    let mut planned = Totals::default();
    let mut facts = HeaderFacts::new(options);
    let mut line_ids = LineIds::default();
    // Every bad input of the run is reported, not only the first.
    let mut bad_inputs = Vec::new();
    each_in_order(files, survey_file, |index, survey| {
        let file = &files[index];
        on_progress(Progress { stage: Stage::Counting, files_done: index + 1, files_total: files.len(), bytes_done: 0 });
        let survey = match survey {
            Ok(survey) => survey,
            Err(error) => {
                bad_inputs.push(error);
                return Ok(());
            }
        };
        for contribution in &survey.conversations {
            planned.add(&contribution.figures);
            line_ids.plan(&contribution.conversation_id);
            facts.note_conversation(contribution.consultant_profile.as_ref(), contribution.vertical.as_deref(), file);
        }
        facts.note_file(&survey.file, file);
        Ok(())
    })?;
    match bad_inputs.len() {
        0 => Ok((planned, facts, line_ids)),
        1 => Err(bad_inputs.remove(0)),
        _ => Err(BuildError::BadInputs(bad_inputs)),
    }
}

/// Runs `work` on every file, on up to four threads, and hands the results
/// to `consume` in file order. Workers take files in batches (one hand-over
/// per batch, not per file) and stay at most a window of batches ahead of
/// `consume`, which bounds memory; the first error stops everything.
pub(crate) fn each_in_order<T: Send, E>(
    files: &[PathBuf],
    work: impl Fn(&Path) -> T + Sync,
    mut consume: impl FnMut(usize, T) -> Result<(), E>,
) -> Result<(), E> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let window = workers * WINDOW_PER_WORKER;
    let batches: Vec<&[PathBuf]> = files.chunks(BATCH).collect();
    let next = AtomicUsize::new(0);
    let turn = Turn::default();
    std::thread::scope(|scope| -> Result<(), E> {
        // However the consumer leaves this scope (done, error or panic), the
        // workers waiting for their turn must learn it before the scope joins
        // them, or the join waits for ever.
        let _stop = StopOnDrop(&turn);
        let (sender, receiver) = mpsc::sync_channel::<(usize, Vec<T>)>(window);
        for _ in 0..workers {
            let sender = sender.clone();
            let (next, turn, work, batches) = (&next, &turn, &work, &batches);
            scope.spawn(move || loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= batches.len() || !turn.wait_for(index, window) {
                    return;
                }
                let results = batches[index].iter().map(|file| work(file)).collect();
                if sender.send((index, results)).is_err() {
                    return; // the consumer stopped on an error
                }
            });
        }
        drop(sender);

        let mut waiting = BTreeMap::new();
        for index in 0..batches.len() {
            while !waiting.contains_key(&index) {
                let (i, results) = receiver.recv().expect("workers send every batch before they stop");
                waiting.insert(i, results);
            }
            let results: Vec<T> = waiting.remove(&index).expect("checked above");
            for (offset, result) in results.into_iter().enumerate() {
                consume(index * BATCH + offset, result)?;
            }
            turn.consumed(index + 1);
        }
        Ok(())
    })
}

/// How far the consumer of [`each_in_order`] is, for workers to wait on.
#[derive(Default)]
struct Turn {
    state: Mutex<TurnState>,
    changed: Condvar,
}

#[derive(Default)]
struct TurnState {
    consumed: usize,
    stopped: bool,
}

impl Turn {
    /// Waits until batch `index` is within `window` of the consumer; false when it stopped.
    fn wait_for(&self, index: usize, window: usize) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while !state.stopped && index >= state.consumed + window {
            state = self.changed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        !state.stopped
    }

    fn consumed(&self, batches: usize) {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).consumed = batches;
        self.changed.notify_all();
    }

    fn stop(&self) {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).stopped = true;
        self.changed.notify_all();
    }
}

/// Stops the workers when the consumer's scope ends, however it ends.
struct StopOnDrop<'t>(&'t Turn);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// The first pass over one file: the light survey when the file is of the
/// expected shape, else the full reader (which also names what is wrong).
fn survey_file(file: &Path) -> Result<Survey, BuildError> {
    note_read(file);
    let io_error = |source| BuildError::Io { path: file.to_owned(), source };
    let (handle, bytes) = input::open(file).map_err(io_error)?;
    if bytes <= PREPARE_LIMIT {
        if let Some(survey) = survey::survey(&input::read_all(handle, bytes).map_err(io_error)?) {
            return Ok(survey);
        }
    }
    let mut conversations = Vec::new();
    let report = read_checked(file, |conversation| {
        conversations.push(Contribution::of(&conversation));
        Ok(())
    })?;
    Ok(Survey { conversations, file: report.facts })
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
    warnings: usize,
    bytes: u64,
    /// What a full file states about itself.
    facts: FileFacts,
}

fn prepare(file: &Path, plan: &LineIds) -> Prepared {
    note_read(file);
    let (handle, bytes) = match input::open(file) {
        Ok((_, bytes)) if bytes > PREPARE_LIMIT => return Prepared::Large,
        Ok(opened) => opened,
        Err(source) => return Prepared::Failed(BuildError::Io { path: file.to_owned(), source }),
    };
    let mut conversations = Vec::new();
    let read = input::read_opened(file, handle, bytes, Mode::Build, |conversation| {
        conversations.push(render_planned(conversation, plan));
        Ok(())
    });
    match checked(file, read) {
        Ok(report) => Prepared::Ready { conversations, report },
        Err(error) => Prepared::Failed(error),
    }
}

/// What the writer needs of a conversation once it is rendered (the parsed
/// pairs are dropped by the worker that read them).
struct ConversationInfo {
    conversation_id: String,
    /// The JSONL line-id suffix it was rendered with.
    line_suffix: String,
    consultant_profile: Option<Value>,
    vertical: Option<String>,
}

fn render_planned(conversation: Conversation, plan: &LineIds) -> (ConversationInfo, Fragment) {
    let line_suffix = plan.suffix(&conversation.conversation_id);
    let fragment = render::render_conversation_fragment(&conversation, &line_suffix);
    let info = ConversationInfo {
        conversation_id: conversation.conversation_id,
        consultant_profile: conversation.consultant_profile,
        vertical: conversation.vertical,
        line_suffix,
    };
    (info, fragment)
}

/// Reads one input in build mode; a file with errors is a `BuildError::Invalid`.
fn read_checked(file: &Path, sink: impl FnMut(Conversation) -> Result<(), BuildError>) -> Result<CheckedFile, BuildError> {
    note_read(file);
    checked(file, input::read_file(file, Mode::Build, sink))
}

/// A build's view of what reading `file` gave.
fn checked(file: &Path, read: Result<FileReport, ReadFailure<BuildError>>) -> Result<CheckedFile, BuildError> {
    let report = read.map_err(|failure| match failure {
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
    let facts = if report.kind == Some(FileKind::Full) { FileFacts::of_full_file(&report.top.fields) } else { FileFacts::default() };
    Ok(CheckedFile { warnings: report.findings.warning_count(), bytes: report.bytes, facts })
}

fn output_temp_file(dir: &Path) -> io::Result<NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    builder.tempfile_in(dir)
}

/// Flushes a temporary file. No fsync: nothing reads these until the final
/// rename, which is what makes the outputs appear whole or not at all.
fn finish_temp(writer: BatchWriter<NamedTempFile>, dir: &Path) -> Result<NamedTempFile, BuildError> {
    writer.into_inner().map_err(|source| BuildError::Io { path: dir.to_owned(), source })
}

/// Every time a build opens an input (tests check a build reads each input
/// a bounded number of times).
#[cfg(test)]
static READS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

#[cfg(test)]
fn note_read(file: &Path) {
    READS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(file.to_owned());
}

#[cfg(not(test))]
#[inline(always)]
fn note_read(_file: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads_of(file: &Path) -> usize {
        READS.lock().unwrap().iter().filter(|read| *read == file).count()
    }

    #[test]
    fn shared_id_prefixes_do_not_make_the_build_read_a_source_again() {
        // A carried-over full file whose conversations all share their first
        // 8 characters (sequential ids): every one after the first needs its
        // full id in the line ids.
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
        let template = std::fs::read_to_string(fixtures.join("enriched/enriched-2.json")).unwrap();
        let sources = tempfile::tempdir().unwrap();
        let count = 40;
        for i in 0..count {
            let id = format!("aaaaaaaa-0000-4000-8000-{i:012x}");
            std::fs::write(sources.path().join(format!("{i:03}.json")), template.replace("2ecd51bd-8dd9-478a-9fb4-de20f69bd441", &id)).unwrap();
        }
        let options = BuildOptions { name: "shared".into(), description: None, target_model: Some("m".into()), vertical: None, jsonl_meta: false, now: DateTime::UNIX_EPOCH };
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let carried = build(&[sources.path().to_owned()], first.path(), &options, |_| {}).unwrap();

        let rebuilt = build(std::slice::from_ref(&carried.json_path), second.path(), &options, |_| {}).unwrap();
        assert!(reads_of(&carried.json_path) <= 2, "read {} times: once per pass at most", reads_of(&carried.json_path));
        assert_eq!(std::fs::read(&rebuilt.jsonl_path).unwrap(), std::fs::read(&carried.jsonl_path).unwrap());
        let jsonl = std::fs::read_to_string(&rebuilt.jsonl_path).unwrap();
        let ids: Vec<String> = jsonl.lines().map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "line ids are unique");
        assert!(ids[0].ends_with("_aaaaaaaa"), "the first keeps the short form: {}", ids[0]);
        assert!(ids.last().unwrap().ends_with(&format!("_aaaaaaaa-0000-4000-8000-{:012x}", count - 1)));
    }
}
