//! Exports of a build's JSONL read as a stream, in chunks of any size: the
//! lines are grouped back into their conversations (a conversation's lines
//! are consecutive) and each conversation is rendered once its last line is
//! seen, so memory holds one conversation whatever the file holds. What the
//! server streams for `format=openai|sharegpt|alpaca`, byte for byte what
//! [`super::export`] writes for the same JSONL without dedup or split.

use serde::{Deserialize, Serialize};

use super::read::conversation_of_lines;
use super::render::{render_export_fragment, ExportFragment, RenderSettings};
use super::tokens::Tokenizer;
use super::ExportFormat;
use crate::value::Value;

/// Renders a JSONL fed in chunks as export fragments, in order.
pub struct JsonlExporter<'t> {
    settings: RenderSettings<'t>,
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    conversation_id: Option<String>,
    pairs: Vec<Value>,
}

impl<'t> JsonlExporter<'t> {
    pub fn new(settings: RenderSettings<'t>) -> Self {
        Self { settings, partial: Vec::new(), conversation_id: None, pairs: Vec::new() }
    }

    /// Takes the next bytes; `sink` gets each conversation completed by them.
    pub fn feed(&mut self, chunk: &[u8], sink: &mut impl FnMut(ExportFragment)) {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.line(&rest[..end], sink);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&rest[..end]);
                self.line(&line, sink);
            }
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
    }

    /// The end of the input: the last conversation goes to `sink`.
    pub fn finish(&mut self, sink: &mut impl FnMut(ExportFragment)) {
        let line = std::mem::take(&mut self.partial);
        self.line(&line, sink);
        self.flush(sink);
    }

    fn line(&mut self, line: &[u8], sink: &mut impl FnMut(ExportFragment)) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let Ok(Value::Object(record)) = serde_json::from_slice::<Value>(line) else { return };
        if record.contains_key("_meta") {
            return;
        }
        let id = record.get("conversation_id").and_then(Value::as_str).unwrap_or_default();
        if self.conversation_id.as_deref() != Some(id) {
            self.flush(sink);
            self.conversation_id = Some(id.to_owned());
        }
        self.pairs.push(Value::Object(record));
    }

    fn flush(&mut self, sink: &mut impl FnMut(ExportFragment)) {
        let Some(id) = self.conversation_id.take() else { return };
        let conversation = conversation_of_lines(id, std::mem::take(&mut self.pairs));
        sink(render_export_fragment(&conversation, &self.settings, None));
    }
}

/// Appends a fragment's lines to `out`.
pub fn write_fragment(fragment: &ExportFragment, out: &mut Vec<u8>) {
    for example in &fragment.examples {
        out.extend_from_slice(&example.line);
    }
}

/// What the exports of some conversations weigh, summed over conversations:
/// each format's bytes and the `o200k_base` tokens of the OpenAI export (one
/// example per conversation with a target). Stored per member so a
/// version's figures are sums, never a new pass over the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFigures {
    pub openai_bytes: u64,
    pub sharegpt_bytes: u64,
    pub alpaca_bytes: u64,
    pub context_tokens: u64,
    pub training_tokens: u64,
    pub examples: u64,
    /// Tokens of the largest example.
    pub max_example_tokens: u64,
}

impl ExportFigures {
    /// The figures of two sets of conversations together.
    #[must_use]
    pub fn plus(self, other: &Self) -> Self {
        Self {
            openai_bytes: self.openai_bytes + other.openai_bytes,
            sharegpt_bytes: self.sharegpt_bytes + other.sharegpt_bytes,
            alpaca_bytes: self.alpaca_bytes + other.alpaca_bytes,
            context_tokens: self.context_tokens + other.context_tokens,
            training_tokens: self.training_tokens + other.training_tokens,
            examples: self.examples + other.examples,
            max_example_tokens: self.max_example_tokens.max(other.max_example_tokens),
        }
    }

    /// The figures of the conversations in `jsonl` (a build's JSONL lines).
    pub fn of_jsonl(jsonl: &[u8], tokenizer: &Tokenizer) -> Self {
        let mut counter = FiguresCounter::new(tokenizer);
        counter.feed(jsonl);
        counter.finish()
    }

    fn add_fragment(&mut self, format: ExportFormat, fragment: &ExportFragment) {
        let bytes: u64 = fragment.examples.iter().map(|e| e.line.len() as u64).sum();
        match format {
            ExportFormat::OpenAi => {
                self.openai_bytes += bytes;
                for example in &fragment.examples {
                    self.context_tokens += example.tokens.context as u64;
                    self.training_tokens += example.tokens.training as u64;
                    self.examples += 1;
                    self.max_example_tokens = self.max_example_tokens.max(example.tokens.total() as u64);
                }
            }
            ExportFormat::ShareGpt => self.sharegpt_bytes += bytes,
            ExportFormat::Alpaca => self.alpaca_bytes += bytes,
            ExportFormat::Jsonl => {}
        }
    }

    pub fn total_tokens(&self) -> u64 {
        self.context_tokens + self.training_tokens
    }

    /// Bytes of `format`'s export (`None` for the build's own JSONL).
    pub fn bytes(&self, format: ExportFormat) -> Option<u64> {
        match format {
            ExportFormat::OpenAi => Some(self.openai_bytes),
            ExportFormat::ShareGpt => Some(self.sharegpt_bytes),
            ExportFormat::Alpaca => Some(self.alpaca_bytes),
            ExportFormat::Jsonl => None,
        }
    }
}

/// [`ExportFigures`] of a JSONL fed in chunks (a stored version's, streamed).
pub struct FiguresCounter<'t> {
    exporters: [(ExportFormat, JsonlExporter<'t>); 3],
    figures: ExportFigures,
}

impl<'t> FiguresCounter<'t> {
    pub fn new(tokenizer: &'t Tokenizer) -> Self {
        let exporter = |format: ExportFormat| {
            let tokenizer = (format == ExportFormat::OpenAi).then_some(tokenizer);
            (format, JsonlExporter::new(RenderSettings { format, with_metadata: false, tokenizer }))
        };
        let exporters = [exporter(ExportFormat::OpenAi), exporter(ExportFormat::ShareGpt), exporter(ExportFormat::Alpaca)];
        Self { exporters, figures: ExportFigures::default() }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        let figures = &mut self.figures;
        for (format, exporter) in &mut self.exporters {
            exporter.feed(chunk, &mut |fragment| figures.add_fragment(*format, &fragment));
        }
    }

    pub fn finish(mut self) -> ExportFigures {
        let figures = &mut self.figures;
        for (format, exporter) in &mut self.exporters {
            exporter.finish(&mut |fragment| figures.add_fragment(*format, &fragment));
        }
        self.figures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    /// Two conversations' JSONL lines, as a build writes them.
    fn jsonl() -> Vec<u8> {
        let line = |conversation: &str, id: &str, history: Value, input: &str, target: &str| {
            let value = json!({"id": id, "conversation_id": conversation, "system_prompt": "Be kind.", "conversation_history": history,
                "current_user_input": input, "target_response": target});
            let mut line = serde_json::to_vec(&value).unwrap();
            line.push(b'\n');
            line
        };
        let h = |role: &str, content: &str| json!({"role": role, "content": content});
        [
            line("c1", "p1_c1", json!([h("user", "Hi")]), "Hi", "Hello."),
            line("c1", "p2_c1", json!([h("user", "Hi"), h("assistant", "Hello."), h("user", "Money?")]), "Money?", "Let us see."),
            line("c2", "p1_c2", json!([]), "Help", "Of course."),
        ]
        .concat()
    }

    fn export_all(chunks: &[&[u8]], format: ExportFormat) -> Vec<u8> {
        let mut exporter = JsonlExporter::new(RenderSettings { format, with_metadata: false, tokenizer: None });
        let mut out = Vec::new();
        let mut sink = |fragment: ExportFragment| write_fragment(&fragment, &mut out);
        for chunk in chunks {
            exporter.feed(chunk, &mut sink);
        }
        exporter.finish(&mut sink);
        out
    }

    #[test]
    fn chunk_boundaries_do_not_change_the_export() {
        let jsonl = jsonl();
        for format in [ExportFormat::OpenAi, ExportFormat::ShareGpt, ExportFormat::Alpaca] {
            let whole = export_all(&[&jsonl], format);
            let bytes: Vec<&[u8]> = jsonl.chunks(1).collect();
            assert_eq!(export_all(&bytes, format), whole, "{format:?} fed a byte at a time");
            let (a, b) = jsonl.split_at(jsonl.len() / 2);
            assert_eq!(export_all(&[a, b], format), whole, "{format:?} fed in halves");
        }
        let openai = String::from_utf8(export_all(&[&jsonl], ExportFormat::OpenAi)).unwrap();
        assert_eq!(openai.lines().count(), 2, "one line per conversation");
        assert_eq!(String::from_utf8(export_all(&[&jsonl], ExportFormat::Alpaca)).unwrap().lines().count(), 3, "one line per pair");
    }

    #[test]
    fn figures_are_sums_over_conversations() {
        let jsonl = jsonl();
        let tokenizer = Tokenizer::o200k();
        let whole = ExportFigures::of_jsonl(&jsonl, &tokenizer);
        let split = jsonl.iter().enumerate().filter(|(_, &b)| b == b'\n').nth(1).unwrap().0 + 1;
        let (first, second) = (ExportFigures::of_jsonl(&jsonl[..split], &tokenizer), ExportFigures::of_jsonl(&jsonl[split..], &tokenizer));
        assert_eq!(whole.openai_bytes, export_all(&[&jsonl], ExportFormat::OpenAi).len() as u64);
        assert_eq!(whole.alpaca_bytes, first.alpaca_bytes + second.alpaca_bytes);
        assert_eq!(whole.sharegpt_bytes, first.sharegpt_bytes + second.sharegpt_bytes);
        assert_eq!(whole.examples, 2);
        assert_eq!(whole.training_tokens, first.training_tokens + second.training_tokens);
        assert_eq!(whole.max_example_tokens, first.max_example_tokens.max(second.max_example_tokens));
        let count = |text: &str| tokenizer.count(text) as u64;
        assert_eq!(second.training_tokens, count("Of course."));
        assert_eq!(second.context_tokens, count("Be kind.") + count("Help"));
        assert_eq!(ExportFigures::of_jsonl(b"", &tokenizer), ExportFigures::default());
    }
}
