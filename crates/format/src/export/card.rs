//! The dataset card (`README.md`) beside an export: Hugging Face front
//! matter naming the split files, so the folder uploads to the Hub as a
//! dataset as it is, and the export's figures for the people reading it.

use std::fmt::Write;

use super::{ExportFormat, ExportSummary};
use crate::value::Value;

/// The Hub's `size_categories` value for `rows` examples.
pub fn size_category(rows: usize) -> &'static str {
    match rows {
        0..1_000 => "n<1K",
        1_000..10_000 => "1K<n<10K",
        10_000..100_000 => "10K<n<100K",
        100_000..1_000_000 => "100K<n<1M",
        1_000_000..10_000_000 => "1M<n<10M",
        _ => "10M<n<100M",
    }
}

fn describe(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::OpenAi => "OpenAI chat fine-tuning lines: `messages` (system, user and assistant turns), one conversation per line",
        ExportFormat::ShareGpt => "ShareGPT lines: `conversations` of `{from: system|human|gpt, value}`, one conversation per line",
        ExportFormat::Alpaca => "Alpaca lines: `instruction` (system prompt), `input` (history and user input), `output` (target), one pair per line",
        ExportFormat::Jsonl => "lora-files v4 JSONL lines, one training pair per line",
    }
}

/// The card's text.
pub fn dataset_card(name: &str, summary: &ExportSummary) -> String {
    let mut card = String::new();
    let rows: usize = summary.files.iter().map(|f| f.examples).sum();
    card.push_str("---\n");
    card.push_str("# Placeholder: replace with the license the conversations may be shared under.\nlicense: other\n");
    card.push_str("task_categories:\n- text-generation\n");
    let _ = writeln!(card, "tags:\n- lora\n- fine-tuning\n- {}", summary.format.as_str());
    let _ = writeln!(card, "size_categories:\n- {}", size_category(rows));
    card.push_str("configs:\n- config_name: default\n  data_files:\n");
    for file in &summary.files {
        let path = file.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = writeln!(card, "  - split: {}\n    path: {}", file.split, yaml_string(&path));
    }
    card.push_str("---\n\n");
    let _ = writeln!(card, "# {name}\n\n{}, exported by lora-files.\n", describe(summary.format));

    card.push_str("## Files\n\n| split | file | conversations | examples | bytes |\n| --- | --- | ---: | ---: | ---: |\n");
    for file in &summary.files {
        let path = file.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = writeln!(card, "| {} | `{path}` | {} | {} | {} |", file.split, file.conversations, file.examples, file.bytes);
    }
    let totals = &summary.totals;
    let quality = totals.quality();
    let figure = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"));
    card.push_str("\n## Figures\n\n");
    let _ = writeln!(card, "- Conversations read: {}; training pairs (with a target): {}; turns: {}", totals.conversations, totals.training_pairs, totals.turns);
    if summary.conversations_without_target > 0 {
        let _ = writeln!(card, "- Conversations without any target (no line): {}", summary.conversations_without_target);
    }
    let _ = writeln!(
        card,
        "- Quality score: mean {}, min {}, max {}; human-reviewed pairs: {} ({}%)",
        figure(quality.avg_quality_score),
        figure(quality.min_quality_score),
        figure(quality.max_quality_score),
        quality.human_reviewed_count,
        quality.human_reviewed_percentage
    );
    let verb = if summary.dedup { "dropped" } else { "kept (export with --dedup to drop them)" };
    let _ = writeln!(card, "- Exact duplicates (normalised user input + target): {}, {verb}", summary.duplicates.len());
    if let Some(tokens) = &summary.tokens {
        let tokenizer = summary.tokenizer.as_deref().unwrap_or("?");
        let _ = writeln!(card, "- Tokens ({tokenizer}, texts without a chat template): {tokens}");
    }
    card.push_str("\n## Scaffolding distribution (conversations)\n");
    let distribution = totals.distribution.to_value();
    for (title, key) in [("Personas", "personas"), ("Emotional arcs", "emotional_arcs"), ("Training topics", "training_topics")] {
        let _ = writeln!(card, "\n{title}:\n");
        match distribution.get(key).and_then(Value::as_object) {
            Some(counts) if !counts.is_empty() => {
                for (key, count) in counts.iter() {
                    let _ = writeln!(card, "- `{key}`: {count}");
                }
            }
            _ => card.push_str("- none stated\n"),
        }
    }
    card
}

/// A YAML scalar that reads back as exactly `text`.
fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_categories_follow_the_hub_buckets() {
        assert_eq!(size_category(0), "n<1K");
        assert_eq!(size_category(999), "n<1K");
        assert_eq!(size_category(1_000), "1K<n<10K");
        assert_eq!(size_category(10_000), "10K<n<100K");
    }
}
