//! Trainer-ready exports of a training file: OpenAI chat `messages`,
//! ShareGPT `conversations`, Alpaca `instruction / input / output` and the
//! build's own JSONL, with token statistics, exact dedup, leak-free splits by
//! conversation and a Hugging Face dataset card.
//!
//! Inputs are what `build` takes, plus JSONL files: each conversation is
//! parsed once, rendered into its lines ([`render::render_export_fragment`])
//! and its tokens counted by a worker; the writer then dedups, splits and
//! writes in input order, so the same inputs always give the same bytes.

pub mod card;
pub mod check;
pub mod dedup;
pub mod read;
pub mod render;
pub mod split;
pub mod stream;
pub mod tokens;

use std::collections::{HashMap, HashSet};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::diagnostics::Diagnostic;
use crate::input::FileKind;
use crate::quality::Totals;
use crate::render::line_id_suffix;
pub use render::{render_export_fragment, Example, ExportFragment, RenderSettings};
pub use split::Split;
pub use stream::{ExportFigures, FiguresCounter, JsonlExporter};
pub use tokens::{ExampleTokens, TokenStats, TokenSummary, Tokenizer};

/// The shapes an export can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// `{"messages": [{"role", "content"}…]}`, one line per conversation.
    OpenAi,
    /// `{"conversations": [{"from", "value"}…]}`, one line per conversation.
    ShareGpt,
    /// `{"instruction", "input", "output"}`, one line per pair with a target.
    Alpaca,
    /// The build's own JSONL: one line per pair with a target.
    Jsonl,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 4] = [ExportFormat::OpenAi, ExportFormat::ShareGpt, ExportFormat::Alpaca, ExportFormat::Jsonl];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::OpenAi => "openai",
            ExportFormat::ShareGpt => "sharegpt",
            ExportFormat::Alpaca => "alpaca",
            ExportFormat::Jsonl => "jsonl",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|format| format.as_str() == text)
    }

    /// One line per conversation rather than per pair.
    pub fn is_per_conversation(self) -> bool {
        matches!(self, ExportFormat::OpenAi | ExportFormat::ShareGpt)
    }
}

#[derive(Debug)]
pub struct ExportOptions {
    pub format: ExportFormat,
    /// Names the files: `NAME.train.jsonl`, `NAME.<split>.jsonl`.
    pub name: String,
    pub with_metadata: bool,
    /// Drop later duplicates (they are counted either way).
    pub dedup: bool,
    pub split: Option<Split>,
    /// `None`: no token figures.
    pub tokenizer: Option<Tokenizer>,
    pub max_tokens: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {} error(s)", path.display(), errors.len())]
    Invalid { path: PathBuf, errors: Vec<Diagnostic> },
    #[error("{}: {kind:?} files cannot be exported; give a full JSON, a JSONL or enriched conversations", path.display())]
    WrongKind { path: PathBuf, kind: FileKind },
    #[error("conversation {conversation_id} appears twice: in {} and in {}", first.display(), second.display())]
    DuplicateConversation { conversation_id: String, first: PathBuf, second: PathBuf },
    #[error("no conversations in the inputs")]
    NoConversations,
    #[error("invalid name {0:?}: it names the output files, so it must not be empty, contain '/' or '\\', or start with '.'")]
    BadName(String),
}

/// A later example whose normalised user input and target an earlier one holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    pub id: String,
    pub first: String,
}

/// One file written.
#[derive(Clone, Debug)]
pub struct SplitFile {
    /// `train` or the split's name.
    pub split: String,
    pub path: PathBuf,
    pub conversations: usize,
    pub examples: usize,
    pub bytes: u64,
}

#[derive(Debug)]
pub struct ExportSummary {
    pub format: ExportFormat,
    /// Empty when only the figures were asked for.
    pub files: Vec<SplitFile>,
    /// The dataset card, when files were written.
    pub card: Option<PathBuf>,
    pub input_bytes: u64,
    /// Everything read, as a build of the inputs states it.
    pub totals: Totals,
    /// Lines written (after dedup).
    pub examples: usize,
    /// Conversations with no pair that has a target (they give no line).
    pub conversations_without_target: usize,
    /// Duplicates found; dropped when `dedup` was asked for.
    pub duplicates: Vec<Duplicate>,
    pub dedup: bool,
    pub tokenizer: Option<String>,
    pub tokens: Option<TokenSummary>,
    /// Examples over `max_tokens`, with their tokens (written all the same).
    pub over_max_tokens: Vec<(String, usize)>,
}

fn check_name(name: &str) -> Result<(), ExportError> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.contains(['/', '\\', '\0']) || trimmed.starts_with('.') {
        return Err(ExportError::BadName(name.to_owned()));
    }
    Ok(())
}

/// Where the lines go while exporting: straight into the train file, or,
/// with a split, into one body whose per-conversation ranges are sent to
/// their files once every conversation (and so the split) is known.
enum Output {
    Figures,
    Direct(BufWriter<NamedTempFile>),
    Pending { body: BufWriter<NamedTempFile>, ranges: Vec<(String, u64, usize)>, written: u64 },
}

impl Output {
    fn write(&mut self, conversation_id: &str, lines: &[&[u8]], examples: usize) -> io::Result<()> {
        match self {
            Output::Figures => Ok(()),
            Output::Direct(file) => lines.iter().try_for_each(|line| file.write_all(line)),
            Output::Pending { body, ranges, written } => {
                let start = *written;
                for line in lines {
                    body.write_all(line)?;
                    *written += line.len() as u64;
                }
                ranges.push((conversation_id.to_owned(), *written - start, examples));
                Ok(())
            }
        }
    }
}

/// What the writer keeps while going through the conversations in order.
struct Writer<'o> {
    options: &'o ExportOptions,
    output: Output,
    totals: Totals,
    stats: TokenStats,
    seen_conversations: HashMap<String, PathBuf>,
    short_ids: HashSet<String>,
    keys: HashMap<dedup::DedupKey, String>,
    duplicates: Vec<Duplicate>,
    examples: usize,
    conversations_with_lines: usize,
    conversations_without_target: usize,
}

impl Writer<'_> {
    fn add(&mut self, fragment: ExportFragment, source: &Path) -> Result<(), ExportError> {
        let id = fragment.conversation_id;
        if let Some(first) = self.seen_conversations.get(&id) {
            return Err(ExportError::DuplicateConversation { conversation_id: id, first: first.clone(), second: source.to_owned() });
        }
        self.seen_conversations.insert(id.clone(), source.to_owned());
        self.totals.add(&fragment.figures);
        let mut examples = fragment.examples;
        // Two conversations whose ids share their first 8 characters: the
        // later one's line ids take its whole id, as the build's do.
        let short = line_id_suffix(&id, |_| false);
        if !self.short_ids.insert(short.clone()) && short != id {
            for example in &mut examples {
                relabel(example, &short, &id, self.options.format);
            }
        }
        if examples.is_empty() {
            self.conversations_without_target += 1;
            return Ok(());
        }
        let mut kept: Vec<&[u8]> = Vec::with_capacity(examples.len());
        for example in &examples {
            if let Some(first) = self.keys.get(&example.key) {
                self.duplicates.push(Duplicate { id: example.id.clone(), first: first.clone() });
                if self.options.dedup {
                    continue;
                }
            } else {
                self.keys.insert(example.key, example.id.clone());
            }
            if self.options.tokenizer.is_some() {
                self.stats.add(&example.id, example.tokens);
            }
            kept.push(&example.line);
        }
        if kept.is_empty() {
            return Ok(());
        }
        self.examples += kept.len();
        self.conversations_with_lines += 1;
        let count = kept.len();
        self.output.write(&id, &kept, count).map_err(|source| ExportError::Io { path: PathBuf::from("(temporary output)"), source })
    }
}

/// An example rendered with the short line-id suffix, given the whole id.
fn relabel(example: &mut Example, short: &str, full: &str, format: ExportFormat) {
    let Some(stem) = example.id.strip_suffix(short) else { return };
    example.id = format!("{stem}{full}");
    if format == ExportFormat::Jsonl {
        if let Ok(crate::value::Value::Object(mut line)) = serde_json::from_slice::<crate::value::Value>(&example.line) {
            line.insert("id".into(), example.id.clone().into());
            example.line.clear();
            crate::json::write_compact(&mut example.line, &crate::value::Value::Object(line)).expect("writing to a Vec cannot fail");
            example.line.push(b'\n');
        }
    }
}

/// Exports `inputs` into `out_dir` (or, with `None`, only computes the
/// figures: `validate --stats`). Files appear whole or not at all: each is
/// written to a temporary file and renamed at the end.
pub fn export(inputs: &[PathBuf], out_dir: Option<&Path>, options: &ExportOptions) -> Result<ExportSummary, ExportError> {
    check_name(&options.name)?;
    let io_at = |path: &Path| {
        let path = path.to_owned();
        move |source| ExportError::Io { path, source }
    };
    let files = read::collect_inputs(inputs).map_err(io_at(Path::new("inputs")))?;
    let temp = |dir: &Path| NamedTempFile::new_in(dir).map(|f| BufWriter::with_capacity(256 * 1024, f)).map_err(io_at(dir));
    let output = match out_dir {
        None => Output::Figures,
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(io_at(dir))?;
            match options.split {
                None => Output::Direct(temp(dir)?),
                Some(_) => Output::Pending { body: temp(dir)?, ranges: Vec::new(), written: 0 },
            }
        }
    };
    let mut writer = Writer {
        options,
        output,
        totals: Totals::default(),
        stats: TokenStats::with_limit(options.max_tokens),
        seen_conversations: HashMap::new(),
        short_ids: HashSet::new(),
        keys: HashMap::new(),
        duplicates: Vec::new(),
        examples: 0,
        conversations_with_lines: 0,
        conversations_without_target: 0,
    };
    let settings = RenderSettings { format: options.format, with_metadata: options.with_metadata, tokenizer: options.tokenizer.as_ref() };
    let mut input_bytes = 0;
    crate::build::each_in_order(
        &files,
        |file| read::read_and_render(file, &settings),
        |index, rendered| {
            let rendered = rendered?;
            input_bytes += rendered.bytes;
            rendered.fragments.into_iter().try_for_each(|fragment| writer.add(fragment, &files[index]))
        },
    )?;
    if writer.totals.conversations == 0 {
        return Err(ExportError::NoConversations);
    }

    let stem = options.name.trim();
    let (mut files_written, mut card_path) = (Vec::new(), None);
    if let Some(dir) = out_dir {
        let train_path = dir.join(format!("{stem}.train.jsonl"));
        let persist = |file: BufWriter<NamedTempFile>, path: &Path| -> Result<u64, ExportError> {
            let file = file.into_inner().map_err(|e| ExportError::Io { path: path.to_owned(), source: e.into_error() })?;
            let bytes = file.as_file().metadata().map_err(io_at(path))?.len();
            file.persist(path).map_err(|e| ExportError::Io { path: path.to_owned(), source: e.error })?;
            Ok(bytes)
        };
        match std::mem::replace(&mut writer.output, Output::Figures) {
            Output::Figures => {}
            Output::Direct(file) => {
                let bytes = persist(file, &train_path)?;
                files_written.push(SplitFile {
                    split: "train".into(),
                    path: train_path,
                    conversations: writer.conversations_with_lines,
                    examples: writer.examples,
                    bytes,
                });
            }
            Output::Pending { body, ranges, .. } => {
                let split = options.split.as_ref().expect("pending output only with a split");
                let held: HashSet<&str> = split.held_out(ranges.iter().map(|(id, ..)| id.as_str()));
                let split_path = dir.join(format!("{stem}.{}.jsonl", split.name));
                let body = body.into_inner().map_err(|e| ExportError::Io { path: dir.to_owned(), source: e.into_error() })?;
                let (mut train, mut other) = (temp(dir)?, temp(dir)?);
                let mut counts = [(0usize, 0usize); 2];
                let mut reader = io::BufReader::with_capacity(256 * 1024, body.reopen().map_err(io_at(dir))?);
                for (id, length, examples) in &ranges {
                    let (target, count) = if held.contains(id.as_str()) { (&mut other, &mut counts[1]) } else { (&mut train, &mut counts[0]) };
                    io::copy(&mut io::Read::take(&mut reader, *length), target).map_err(io_at(dir))?;
                    count.0 += 1;
                    count.1 += examples;
                }
                let train_bytes = persist(train, &train_path)?;
                let split_bytes = persist(other, &split_path)?;
                files_written.push(SplitFile { split: "train".into(), path: train_path, conversations: counts[0].0, examples: counts[0].1, bytes: train_bytes });
                files_written.push(SplitFile { split: split.name.clone(), path: split_path, conversations: counts[1].0, examples: counts[1].1, bytes: split_bytes });
            }
        }
    }
    let tokens = options.tokenizer.as_ref().map(|_| writer.stats.summary());
    let mut summary = ExportSummary {
        format: options.format,
        files: files_written,
        card: None,
        input_bytes,
        totals: writer.totals,
        examples: writer.examples,
        conversations_without_target: writer.conversations_without_target,
        duplicates: writer.duplicates,
        dedup: options.dedup,
        tokenizer: options.tokenizer.as_ref().map(Tokenizer::name),
        tokens,
        over_max_tokens: std::mem::take(&mut writer.stats.over_limit),
    };
    if let Some(dir) = out_dir {
        let path = dir.join("README.md");
        std::fs::write(&path, card::dataset_card(stem, &summary)).map_err(io_at(&path))?;
        card_path = Some(path);
    }
    summary.card = card_path;
    Ok(summary)
}
