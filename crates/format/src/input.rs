//! Reading input files: what kind a file is (by content), its findings with
//! positions, and its conversations one at a time.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::diagnostics::{Diagnostic, Findings, Severity};
use crate::document::{self, ReadError, TopLevel};
use crate::model::Conversation;
use crate::path::JsonPath;
use crate::position::{self, Position};
use crate::validate::{self, FullFileCheck};
use crate::value::{Map, Value};

/// Files up to this size are read into memory; larger ones are mapped (one
/// read of the text serves the parse and the placing of findings alike), or
/// streamed where they cannot be mapped.
const IN_MEMORY_LIMIT: u64 = 64 * 1024 * 1024;

/// A file's text: read, or mapped.
enum Text {
    Read(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Text {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Text::Read(text) => text,
            Text::Mapped(text) => text,
        }
    }
}

/// `file` mapped into memory, or `None` where it cannot be (not a regular file).
fn map(file: &File) -> Option<memmap2::Mmap> {
    // SAFETY: the map is only read. A file truncated by another process while
    // it is read would fault, as with every reader that maps its input
    // (ripgrep's trade-off too); inputs are files the user points us at.
    unsafe { memmap2::Mmap::map(file) }.ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Enriched,
    Full,
    Jsonl,
    /// An LLM conversation (`conversation_metadata` + `turns`), not yet enriched.
    Raw,
}

/// Whether reading stops at the first conversation with errors (building) or
/// goes on to report everything (validating).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Build,
    Validate,
}

/// What reading a file found.
#[derive(Debug)]
pub struct FileReport {
    pub kind: Option<FileKind>,
    pub findings: Findings,
    pub conversations: usize,
    pub bytes: u64,
    /// The top-level keys and values other than `conversations` (empty for JSONL).
    pub top: TopLevel,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadFailure<E> {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The conversation sink refused a conversation.
    #[error("stopped")]
    Sink(E),
}

fn single(code: &'static str, path: JsonPath, position: Position, message: String) -> Findings {
    let mut findings = Findings::default();
    findings.push_diagnostic(Diagnostic { severity: Severity::Error, code, path, message, position: Some(position) });
    findings
}

/// Reads `path`; in `Mode::Build`, hands each valid conversation to `sink`
/// and stops at the first one with errors (the report then holds them).
pub fn read_file<E>(
    path: &Path,
    mode: Mode,
    sink: impl FnMut(Conversation) -> Result<(), E>,
) -> Result<FileReport, ReadFailure<E>> {
    let (file, bytes) = open(path).map_err(|source| ReadFailure::Io { path: path.to_owned(), source })?;
    read_opened(path, file, bytes, mode, sink)
}

/// Opens `path` and reads its size from the handle (one path lookup).
pub fn open(path: &Path) -> io::Result<(File, u64)> {
    let file = File::open(path)?;
    let bytes = file.metadata()?.len();
    Ok((file, bytes))
}

/// All of an opened file of `bytes` bytes.
pub fn read_all(mut file: File, bytes: u64) -> io::Result<Vec<u8>> {
    let mut text = Vec::with_capacity(usize::try_from(bytes).unwrap_or(0).saturating_add(1));
    file.read_to_end(&mut text)?;
    Ok(text)
}

/// [`read_file`] of a file [`open`]ed already.
pub fn read_opened<E>(
    path: &Path,
    file: File,
    bytes: u64,
    mode: Mode,
    mut sink: impl FnMut(Conversation) -> Result<(), E>,
) -> Result<FileReport, ReadFailure<E>> {
    let io_error = |source| ReadFailure::Io { path: path.to_owned(), source };
    if looks_like_jsonl(path) {
        let findings = validate_jsonl(BufReader::new(file)).map_err(io_error)?;
        return Ok(FileReport { kind: Some(FileKind::Jsonl), findings, conversations: 0, bytes, top: TopLevel::default() });
    }
    let owned = if bytes > IN_MEMORY_LIMIT {
        match map(&file) {
            Some(mapped) => Text::Mapped(mapped),
            None => return read_document(BufReader::new(file), None, bytes, mode, &mut sink, || std::fs::read(path)),
        }
    } else {
        Text::Read(read_all(file, bytes).map_err(io_error)?)
    };
    let mut text: &[u8] = &owned;
    if let Some(findings) = check_text(text) {
        return Ok(FileReport { kind: None, findings, conversations: 0, bytes, top: TopLevel::default() });
    }
    let mut bom = Findings::default();
    if let Some(rest) = text.strip_prefix(b"\xEF\xBB\xBF") {
        text = rest;
        bom.warning(&JsonPath::root(), "byte_order_mark", "starts with a UTF-8 byte-order mark, which JSON does not use");
        bom.locate_in(b"");
    }
    if is_jsonl_text(text) {
        let findings = validate_jsonl(text).map_err(io_error)?;
        return Ok(FileReport { kind: Some(FileKind::Jsonl), findings, conversations: 0, bytes, top: TopLevel::default() });
    }
    let mut report = read_document(text, Some(text), bytes, mode, &mut sink, || Ok(Vec::new()))?;
    bom.extend(std::mem::take(&mut report.findings));
    report.findings = bom;
    Ok(report)
}

/// Empty and whitespace-only files, reported before parsing. (UTF-8 needs no
/// pass of its own: serde_json checks it while parsing, and a file that fails
/// to parse is then examined by [`syntax_finding`].)
fn check_text(text: &[u8]) -> Option<Findings> {
    if text.iter().all(u8::is_ascii_whitespace) {
        let message = if text.is_empty() { "the file is empty (0 bytes)" } else { "the file holds only whitespace" };
        return Some(single("empty_file", JsonPath::root(), Position::of_offset(text, text.len()), message.into()));
    }
    None
}

/// Why `text` did not parse: bytes that are not UTF-8, else the parser's
/// syntax error at `line`/`column`, each with the JSON path it broke in.
fn syntax_finding(text: &[u8], line: usize, column: usize, message: String) -> Findings {
    if let Err(error) = std::str::from_utf8(text) {
        let offset = error.valid_up_to();
        return single(
            "not_utf8",
            position::path_at(text, offset),
            Position::of_offset(text, offset),
            format!("the file is not UTF-8 text: invalid byte 0x{:02x} at byte offset {offset}", text[offset]),
        );
    }
    let offset = Position::offset_of_serde(text, line, column);
    single("syntax", position::path_at(text, offset), Position::of_offset(text, offset), message)
}

/// A JSONL file by its name (`.jsonl`, `.ndjson`).
pub fn looks_like_jsonl(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("jsonl" | "ndjson"))
}

/// Several JSON values, one per line, rather than one document.
fn is_jsonl_text(text: &[u8]) -> bool {
    let mut lines = text.split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace));
    let Some(first) = lines.next() else { return false };
    lines.next().is_some() && serde_json::from_slice::<Value>(first).is_ok_and(|v| v.is_object())
}

fn read_document<R: Read, E>(
    reader: R,
    text: Option<&[u8]>,
    bytes: u64,
    mode: Mode,
    sink: &mut impl FnMut(Conversation) -> Result<(), E>,
    reread: impl FnOnce() -> io::Result<Vec<u8>>,
) -> Result<FileReport, ReadFailure<E>> {
    enum Stop<E> {
        Invalid,
        Sink(E),
    }
    let mut check = FullFileCheck::default();
    let mut sink_error = None;
    let on_conversation = |index: usize, entry: Value| -> Result<(), Stop<E>> {
        // Only this conversation's findings are looked at: counting all of
        // them each time made a file with many findings quadratic.
        let findings_before = check.findings.len();
        check.conversation(index, &entry);
        if check.findings.has_errors_from(findings_before) {
            return if mode == Mode::Build { Err(Stop::Invalid) } else { Ok(()) };
        }
        if mode == Mode::Build {
            sink(Conversation::from_full_entry(entry, None, None)).map_err(Stop::Sink)?;
        }
        Ok(())
    };
    let result = match text {
        Some(text) => document::read_slice(text, on_conversation),
        None => document::read_stream(reader, on_conversation),
    };
    let mut top = match result {
        Ok(top) => top,
        Err(ReadError::Callback(Stop::Sink(error))) => {
            sink_error = Some(error);
            TopLevel::default()
        }
        Err(ReadError::Callback(Stop::Invalid)) => TopLevel::default(),
        Err(ReadError::Syntax { message, line, column }) => {
            let owned;
            let text = match text {
                Some(text) => text,
                None => {
                    owned = reread().unwrap_or_default();
                    &owned
                }
            };
            let findings = syntax_finding(text, line, column, message);
            return Ok(FileReport { kind: None, findings, conversations: 0, bytes, top: TopLevel::default() });
        }
    };
    if let Some(error) = sink_error {
        return Err(ReadFailure::Sink(error));
    }
    let is_full = top.conversations.is_some() || top.fields.contains_key("training_file_metadata");
    if let (Some(mut findings), false) = (raw_conversation(&top), is_full) {
        if mode == Mode::Validate {
            // A raw or parsed conversation is checked as enrichment would check it.
            findings = crate::enrich::check::conversation_findings(&Value::Object(top.fields.clone()));
        }
        if let Some(text) = text {
            findings.locate_in(text);
        }
        return Ok(FileReport { kind: Some(FileKind::Raw), findings, conversations: 0, bytes, top });
    }
    let (kind, mut findings, conversations) = if is_full || !check.findings.is_empty() {
        let stopped_early = check.findings.has_errors() && mode == Mode::Build;
        let conversations = top.conversations.unwrap_or(0);
        let findings = if stopped_early || mode == Mode::Build { check.findings } else { check.finish(&top) };
        (FileKind::Full, findings, conversations)
    } else {
        let document = Value::Object(std::mem::take(&mut top.fields));
        let findings = validate::validate_enriched(&document);
        let Value::Object(map) = document else { unreachable!("built as an object above") };
        if mode == Mode::Build && !findings.has_errors() {
            sink(Conversation::from_enriched(map)).map_err(ReadFailure::Sink)?;
        } else {
            top.fields = map;
        }
        (FileKind::Enriched, findings, 1)
    };
    // Placing a finding re-reads the text; a build shows only errors, so it places only those.
    let wanted = |d: &Diagnostic| mode == Mode::Validate || d.is_error();
    if findings.iter().any(wanted) {
        let owned;
        let text = match text {
            Some(text) => text,
            None => {
                owned = reread().map_err(|source| ReadFailure::Io { path: PathBuf::new(), source })?;
                &owned
            }
        };
        findings.locate_where(text, wanted);
    }
    Ok(FileReport { kind: Some(kind), findings, conversations, bytes, top })
}

/// The one finding for a raw LLM conversation (`conversation_metadata` +
/// `turns`), which must be enriched before anything else can use it.
fn raw_conversation(top: &TopLevel) -> Option<Findings> {
    if !top.fields.contains_key("turns") || top.fields.contains_key("training_pairs") {
        return None;
    }
    let mut findings = Findings::default();
    findings.error(
        &JsonPath::root().key("turns"),
        "not_enriched",
        "this is a raw conversation (conversation_metadata + turns), not an enriched v4 file: enrich it first",
    );
    Some(findings)
}

/// Validates a JSONL file line by line (rules 18–21).
pub fn validate_jsonl<R: BufRead>(reader: R) -> io::Result<Findings> {
    validate_jsonl_records(reader, |_| {})
}

/// [`validate_jsonl`], handing each record (each object line but the
/// `_meta` header) to `on_record` once checked: a reader of the records
/// parses each line once.
pub fn validate_jsonl_records<R: BufRead>(reader: R, mut on_record: impl FnMut(Map<String, Value>)) -> io::Result<Findings> {
    let mut findings = Findings::default();
    let mut seen_ids = std::collections::HashSet::new();
    let mut meta_total = None;
    let mut records = 0usize;
    let mut first_record_line = true;
    for (index, line) in reader.split(b'\n').enumerate() {
        let line = line?;
        let number = index + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut line_findings = Findings::default();
        match serde_json::from_slice::<Value>(line) {
            Err(error) => {
                let offset = error.column().saturating_sub(1);
                line_findings.push_diagnostic(Diagnostic {
                    severity: Severity::Error,
                    code: "syntax",
                    path: position::path_at(line, offset),
                    message: format!("line is not a JSON value: {}", document::describe(&error)),
                    position: Some(Position { line: number, column: Position::of_offset(line, offset).column }),
                });
            }
            Ok(Value::Object(map)) if map.contains_key("_meta") => {
                if !first_record_line {
                    line_findings.error(&JsonPath::root().key("_meta"), "misplaced_meta", "a `_meta` header may only be the first line");
                }
                meta_total = check_meta(&mut line_findings, &map);
            }
            Ok(record @ Value::Object(_)) => {
                records += 1;
                validate::check_jsonl_record(&mut line_findings, &record, &mut seen_ids);
                if let Value::Object(record) = record {
                    on_record(record);
                }
            }
            Ok(other) => line_findings.error(&JsonPath::root(), "wrong_type", format!("each line must be a JSON object, found {}", validate::describe(&other))),
        }
        first_record_line = false;
        line_findings.locate_on_line(line, number);
        findings.extend(line_findings);
    }
    if let Some(total) = meta_total {
        if total != records as u64 {
            let mut meta = Findings::default();
            meta.warning(&JsonPath::root().key("_meta").key("total_pairs"), "meta_total", format!("says {total} but the file has {records} records"));
            meta.locate_on_line(b"", 1);
            findings.extend(meta);
        }
    }
    Ok(findings)
}

/// Lines of a JSONL text parsed and checked per task of [`validate_jsonl_text`].
const JSONL_TASK_BYTES: usize = 1 << 20;

/// What one line of a JSONL is, once parsed and checked on its own.
enum JsonlLine {
    NotJson,
    Meta { total: Option<u64> },
    Record { record: Map<String, Value>, check_id: bool },
    NotAnObject,
}

/// One non-blank line, its findings placed (those `wanted`).
struct CheckedLine<'t> {
    number: usize,
    text: &'t [u8],
    findings: Findings,
    line: JsonlLine,
}

/// [`validate_jsonl_records`] of a JSONL held in memory, placing only the
/// findings `wanted` picks (the others keep no position): the lines are
/// parsed and checked on the machine's threads, a megabyte of lines at a
/// time, and what depends on earlier lines (a repeated id, a `_meta` after
/// the first line, its `total_pairs`) is then checked in order. The same
/// findings, in the same order, as the line-by-line reader.
pub fn validate_jsonl_text(text: &[u8], wanted: impl Fn(&Diagnostic) -> bool + Sync, on_record: impl FnMut(Map<String, Value>)) -> Findings {
    validate_jsonl_in_tasks(text, JSONL_TASK_BYTES, wanted, on_record)
}

fn validate_jsonl_in_tasks(
    text: &[u8],
    task_bytes: usize,
    wanted: impl Fn(&Diagnostic) -> bool + Sync,
    mut on_record: impl FnMut(Map<String, Value>),
) -> Findings {
    // A task's lines and the number of the first.
    let mut tasks: Vec<(usize, &[u8])> = Vec::new();
    let (mut start, mut number) = (0, 1);
    while start < text.len() {
        let search_from = (start + task_bytes).min(text.len());
        let end = match memchr::memchr(b'\n', &text[search_from..]) {
            Some(at) => search_from + at + 1,
            None => text.len(),
        };
        tasks.push((number, &text[start..end]));
        number += memchr::memchr_iter(b'\n', &text[start..end]).count();
        start = end;
    }
    let utf8 = simdutf8::basic::from_utf8(text).is_ok();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut checked: Vec<(usize, Vec<CheckedLine>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(first, lines)) = tasks.get(i) else { return done };
                        done.push((i, check_jsonl_lines(lines, first, utf8, &wanted)));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|worker| worker.join().expect("checking lines does not panic")).collect()
    });
    checked.sort_unstable_by_key(|(i, _)| *i);

    let mut findings = Findings::default();
    let mut seen_ids = std::collections::HashSet::new();
    let mut meta_total = None;
    let mut records = 0usize;
    let mut first_record_line = true;
    for CheckedLine { number, text, findings: line_findings, line } in checked.into_iter().flat_map(|(_, lines)| lines) {
        // Findings that depend on earlier lines go where the line-by-line reader puts them.
        let mut before = Findings::default();
        let mut after = Findings::default();
        match line {
            JsonlLine::Meta { total } => {
                if !first_record_line {
                    before.error(&JsonPath::root().key("_meta"), "misplaced_meta", "a `_meta` header may only be the first line");
                }
                meta_total = total;
            }
            JsonlLine::Record { record, check_id } => {
                records += 1;
                let record = Value::Object(record);
                if check_id {
                    validate::check_line_id_is_new(&mut after, &record, &mut seen_ids);
                }
                if let Value::Object(record) = record {
                    on_record(record);
                }
            }
            JsonlLine::NotJson | JsonlLine::NotAnObject => {}
        }
        first_record_line = false;
        before.locate_on_line_where(text, number, &wanted);
        after.locate_on_line_where(text, number, &wanted);
        findings.extend(before);
        findings.extend(line_findings);
        findings.extend(after);
    }
    if let Some(total) = meta_total {
        if total != records as u64 {
            let mut meta = Findings::default();
            meta.warning(&JsonPath::root().key("_meta").key("total_pairs"), "meta_total", format!("says {total} but the file has {records} records"));
            meta.locate_on_line_where(b"", 1, &wanted);
            findings.extend(meta);
        }
    }
    findings
}

/// One task of [`validate_jsonl_text`]: `lines` (whole lines, the first
/// numbered `first`) parsed and checked each on its own. In `utf8` text a
/// line is read by the fast parser, and by serde_json where that gives up.
fn check_jsonl_lines<'t>(lines: &'t [u8], first: usize, utf8: bool, wanted: &impl Fn(&Diagnostic) -> bool) -> Vec<CheckedLine<'t>> {
    let mut checked = Vec::new();
    for (index, line) in lines.split(|&b| b == b'\n').enumerate() {
        let number = first + index;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let fast = if utf8 { std::str::from_utf8(line).ok().and_then(|line| crate::parse::parse(line, None)) } else { None };
        let parsed = match fast {
            Some(value) => Ok(value),
            None => serde_json::from_slice::<Value>(line),
        };
        let mut findings = Findings::default();
        let kind = match parsed {
            Err(error) => {
                let offset = error.column().saturating_sub(1);
                findings.push_diagnostic(Diagnostic {
                    severity: Severity::Error,
                    code: "syntax",
                    path: position::path_at(line, offset),
                    message: format!("line is not a JSON value: {}", document::describe(&error)),
                    position: Some(Position { line: number, column: Position::of_offset(line, offset).column }),
                });
                JsonlLine::NotJson
            }
            Ok(Value::Object(map)) if map.contains_key("_meta") => JsonlLine::Meta { total: check_meta(&mut findings, &map) },
            Ok(record @ Value::Object(_)) => {
                let check_id = validate::check_jsonl_record_alone(&mut findings, &record);
                let Value::Object(record) = record else { unreachable!("matched as an object") };
                JsonlLine::Record { record, check_id }
            }
            Ok(other) => {
                findings.error(&JsonPath::root(), "wrong_type", format!("each line must be a JSON object, found {}", validate::describe(&other)));
                JsonlLine::NotAnObject
            }
        };
        findings.locate_on_line_where(line, number, wanted);
        checked.push(CheckedLine { number, text: line, findings, line: kind });
    }
    checked
}

fn check_meta(findings: &mut Findings, map: &Map<String, Value>) -> Option<u64> {
    let path = JsonPath::root().key("_meta");
    let Some(meta) = map.get("_meta").and_then(Value::as_object) else {
        findings.error(&path, "wrong_type", "`_meta` must be an object");
        return None;
    };
    if !meta.get("file_name").is_some_and(Value::is_string) {
        findings.error(&path.key("file_name"), "missing_key", "`_meta.file_name` must be a string");
    }
    if !meta.get("version").is_some_and(Value::is_string) {
        findings.error(&path.key("version"), "missing_key", "`_meta.version` must be a string");
    }
    let total = meta.get("total_pairs").and_then(Value::as_u64);
    if total.is_none() {
        findings.error(&path.key("total_pairs"), "missing_key", "`_meta.total_pairs` must be an integer");
    }
    total
}

/// Rule 21: the JSONL's records are, in order, the full file's pairs that have
/// a target. Both files are streamed side by side; the first difference is reported.
pub fn check_jsonl_against_full(full: &Path, jsonl: &Path) -> io::Result<Findings> {
    let mut records = BufReader::new(File::open(jsonl)?)
        .split(b'\n')
        .enumerate()
        .map(|(i, line)| line.map(|l| (i + 1, l)))
        .filter(|line| !matches!(line, Ok((_, l)) if l.iter().all(u8::is_ascii_whitespace) || l.starts_with(b"{\"_meta\"")));
    let mut findings = Findings::default();
    let result = document::read_stream(BufReader::new(File::open(full)?), |index, conversation| {
        let conversation_id = conversation.pointer("/conversation_metadata/conversation_id").and_then(Value::as_str).unwrap_or_default();
        let pairs = conversation.get("training_pairs").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for (j, pair) in pairs.iter().enumerate().filter(|(_, p)| crate::model::has_target(p)) {
            let origin = format!("conversations[{index}].training_pairs[{j}] of {}", full.display());
            let Some(record) = records.next() else {
                findings.error(&JsonPath::root(), "jsonl_mismatch", format!("the JSONL ends before {origin}"));
                return Err(());
            };
            let (number, line) = match record {
                Ok(record) => record,
                Err(error) => {
                    findings.error(&JsonPath::root(), "unreadable", format!("cannot read {}: {error}", jsonl.display()));
                    return Err(());
                }
            };
            let difference = match serde_json::from_slice::<Value>(&line) {
                Ok(record) => record_difference(&record, pair, conversation_id),
                Err(_) => Some(JsonPath::root()),
            };
            if let Some(path) = difference {
                let mut mismatch = Findings::default();
                mismatch.error(&path, "jsonl_mismatch", format!("differs from {origin}"));
                mismatch.locate_on_line(&line, number);
                findings.extend(mismatch);
                return Err(());
            }
        }
        Ok(())
    });
    if result.is_ok() {
        if let Some(Ok((number, _))) = records.next() {
            let mut extra = Findings::default();
            extra.error(&JsonPath::root(), "jsonl_mismatch", format!("line {number} has no pair with a target in {}", full.display()));
            extra.locate_on_line(b"", number);
            findings.extend(extra);
        }
    }
    Ok(findings)
}

/// The first key where a JSONL record differs from the pair it should carry.
fn record_difference(record: &Value, pair: &Value, conversation_id: &str) -> Option<JsonPath> {
    let root = JsonPath::root();
    let pair_id = pair.get("id").and_then(Value::as_str).unwrap_or_default();
    if !record.get("id").and_then(Value::as_str).is_some_and(|id| id.starts_with(&format!("{pair_id}_"))) {
        return Some(root.key("id"));
    }
    if record.get("conversation_id").and_then(Value::as_str) != Some(conversation_id) {
        return Some(root.key("conversation_id"));
    }
    validate::PAIR_KEYS[2..].iter().find(|key| record.get(key) != pair.get(key)).map(|key| root.key(*key))
}

/// Reads an enriched conversation held in memory (the store's sources):
/// the conversation and its warnings, or every finding when it has errors.
pub fn read_enriched_bytes(text: &[u8]) -> Result<(Conversation, Findings), Findings> {
    if let Some(findings) = check_text(text) {
        return Err(findings);
    }
    let top = match document::read_slice::<()>(text, |_, _| Ok(())) {
        Ok(top) => top,
        Err(ReadError::Syntax { message, line, column }) => return Err(syntax_finding(text, line, column, message)),
        Err(ReadError::Callback(())) => unreachable!("the callback never fails"),
    };
    if top.conversations.is_some() {
        let mut findings = Findings::default();
        findings.error(&JsonPath::root().key("conversations"), "not_enriched", "this is a full training file, not one enriched conversation");
        findings.locate_in(text);
        return Err(findings);
    }
    if let Some(mut findings) = raw_conversation(&top) {
        findings.locate_in(text);
        return Err(findings);
    }
    let document = Value::Object(top.fields);
    let mut findings = validate::validate_enriched(&document);
    findings.locate_in(text);
    if findings.has_errors() {
        return Err(findings);
    }
    let Value::Object(map) = document else { unreachable!("built as an object above") };
    Ok((Conversation::from_enriched(map), findings))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JSONL with every kind of line: the fixture's header and records, a
    /// repeated id, a second header, blank and CRLF lines, broken JSON, a
    /// lone surrogate (the fast parser gives up), a line that is not an
    /// object, bytes that are not UTF-8, and a `total_pairs` that is wrong.
    fn odd_jsonl() -> Vec<u8> {
        let fixture = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/schemas/c-alpha-build_v3.4_emotional-dataset-full-JSON-format_v4.jsonl")).unwrap();
        let lines: Vec<&[u8]> = fixture.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
        let mut text = Vec::new();
        for line in &lines {
            text.extend_from_slice(line);
            text.push(b'\n');
        }
        text.extend_from_slice(lines[1]);
        text.extend_from_slice(b"\r\n\n   \n");
        text.extend_from_slice(lines[0]);
        text.extend_from_slice(b"\n{\"id\": \"x\", \"broken\": tru\n[1, 2]\n{\"id\": \"\\ud800\"}\n");
        let edited = String::from_utf8_lossy(lines[2]).replace("\"turn_number\":", "\"turn_number\": \"three\", \"was\":");
        text.extend_from_slice(edited.as_bytes());
        text.extend_from_slice(b"\n");
        text
    }

    fn in_order(text: &[u8]) -> (Findings, Vec<Map<String, Value>>) {
        let mut records = Vec::new();
        let findings = validate_jsonl_records(text, |record| records.push(record)).unwrap();
        (findings, records)
    }

    #[test]
    fn lines_checked_in_parallel_give_the_findings_and_records_of_the_line_by_line_reader() {
        let mut texts = vec![odd_jsonl()];
        let mut not_utf8 = odd_jsonl();
        not_utf8.extend_from_slice(b"{\"id\": \"\xff\"}\n");
        texts.push(not_utf8);
        let mut unterminated = odd_jsonl();
        unterminated.pop();
        texts.push(unterminated);
        for text in &texts {
            let (expected, expected_records) = in_order(text);
            let codes: Vec<&str> = expected.iter().map(|d| d.code).collect();
            for code in ["duplicate_line_id", "misplaced_meta", "syntax", "wrong_type", "meta_total"] {
                assert!(codes.contains(&code), "{code} in {codes:?}");
            }
            for task_bytes in [1, 100, 5000, JSONL_TASK_BYTES] {
                let mut records = Vec::new();
                let findings = validate_jsonl_in_tasks(text, task_bytes, |_| true, |record| records.push(record));
                assert_eq!(findings, expected, "tasks of {task_bytes} bytes");
                assert_eq!(records, expected_records, "tasks of {task_bytes} bytes");
            }
            // Only the errors placed: the same findings, the warnings without a position.
            let errors_placed = validate_jsonl_in_tasks(text, 100, Diagnostic::is_error, |_| {});
            let unplaced_warnings: Vec<Diagnostic> = expected.iter().cloned().map(|d| if d.is_error() || d.code == "syntax" { d } else { Diagnostic { position: None, ..d } }).collect();
            assert_eq!(errors_placed.into_vec(), unplaced_warnings);
        }
    }
}
