//! Findings about a file: errors block its use, warnings are reported.
//! Each names a JSON path; positions are attached once, from the text.

use std::fmt;

use serde::Serialize;

use crate::path::JsonPath;
use crate::position::{self, Position};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding: what is wrong, where, and how bad.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable snake_case name for the rule, for scripts and tests.
    pub code: &'static str,
    pub path: JsonPath,
    pub message: String,
    /// Line of the file (for JSONL, the line the record is on) and column.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// `LINE:COL: PATH: message` (the caller puts the file name in front).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let position = self.position.unwrap_or(Position::START);
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}: {}: {label}: {}",
            position.line, position.column, self.path, self.message
        )
    }
}

/// An ordered collection of findings.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Findings(Vec<Diagnostic>);

impl Findings {
    pub fn error(&mut self, path: &JsonPath, code: &'static str, message: impl Into<String>) {
        self.push(Severity::Error, path, code, message.into());
    }

    pub fn warning(&mut self, path: &JsonPath, code: &'static str, message: impl Into<String>) {
        self.push(Severity::Warning, path, code, message.into());
    }

    fn push(&mut self, severity: Severity, path: &JsonPath, code: &'static str, message: String) {
        self.0.push(Diagnostic {
            severity,
            code,
            path: path.clone(),
            message,
            position: None,
        });
    }

    pub fn push_diagnostic(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn extend(&mut self, other: Findings) {
        self.0.extend(other.0);
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }

    pub fn error_count(&self) -> usize {
        self.errors().count()
    }

    pub fn warning_count(&self) -> usize {
        self.0.len() - self.error_count()
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    /// Whether a finding from the `start`-th on (in the order found) is an error.
    pub fn has_errors_from(&self, start: usize) -> bool {
        self.0.get(start..).is_some_and(|later| later.iter().any(Diagnostic::is_error))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.0
    }

    /// Finds where each unplaced finding's path is in `text`.
    pub fn locate_in(&mut self, text: &[u8]) {
        self.locate_where(text, |_| true);
    }

    /// Like `locate_in`, for the findings `wanted` picks (a build places only
    /// its errors). One walk of `text` places them all.
    pub fn locate_where(&mut self, text: &[u8], wanted: impl Fn(&Diagnostic) -> bool) {
        self.place(text, wanted, |position| position);
    }

    /// Places every unplaced finding on `line` (a JSONL record), the column found within it.
    pub fn locate_on_line(&mut self, line_text: &[u8], line: usize) {
        self.locate_on_line_where(line_text, line, |_| true);
    }

    /// Like `locate_on_line`, for the findings `wanted` picks.
    pub fn locate_on_line_where(&mut self, line_text: &[u8], line: usize, wanted: impl Fn(&Diagnostic) -> bool) {
        self.place(
            line_text,
            wanted,
            |position| Position {
                line,
                column: position.column,
            },
        );
    }

    fn place(
        &mut self,
        text: &[u8],
        wanted: impl Fn(&Diagnostic) -> bool,
        adjust: impl Fn(Position) -> Position,
    ) {
        let mut unplaced: Vec<&mut Diagnostic> = self
            .0
            .iter_mut()
            .filter(|d| d.position.is_none() && wanted(d))
            .collect();
        if unplaced.is_empty() {
            return;
        }
        let paths: Vec<&JsonPath> = unplaced.iter().map(|d| &d.path).collect();
        let positions = position::locate_all(text, &paths);
        for (diagnostic, position) in unplaced.iter_mut().zip(positions) {
            diagnostic.position = Some(adjust(position));
        }
    }
}

impl IntoIterator for Findings {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placing_thousands_of_findings_reads_the_text_about_once() {
        // One conversation per line, each with a finding on a key that exists
        // and one on a key that does not (placed on its object).
        let entries = 3000;
        let mut text = String::from("{\"conversations\": [\n");
        for i in 0..entries {
            let comma = if i + 1 < entries { "," } else { "" };
            text.push_str(&format!(
                "  {{\"text\": \"{}é\", \"score\": {i}}}{comma}\n",
                "words ".repeat(20)
            ));
        }
        text.push_str("]}\n");
        let mut findings = Findings::default();
        for i in 0..entries {
            let conversation = JsonPath::root().key("conversations").index(i);
            findings.warning(&conversation.key("score"), "test", "a finding");
            findings.warning(&conversation.key("absent"), "test", "a missing key");
        }
        let before = position::scanned_bytes();
        findings.locate_in(text.as_bytes());
        let scanned = position::scanned_bytes() - before;
        assert!(
            scanned <= 3 * text.len(),
            "scanned {scanned} bytes of a {}-byte text for {entries} x 2 findings",
            text.len()
        );

        let placed: Vec<Position> = findings.iter().map(|d| d.position.unwrap()).collect();
        let score_column =
            1 + "  {\"text\": \"".len() + "words ".len() * 20 + "é\", \"score\": ".chars().count();
        for i in [0, 1, entries / 2, entries - 1] {
            assert_eq!(
                placed[2 * i],
                Position {
                    line: i + 2,
                    column: score_column
                },
                "conversations[{i}].score"
            );
            assert_eq!(
                placed[2 * i + 1],
                Position {
                    line: i + 2,
                    column: 3
                },
                "conversations[{i}].absent falls back to its object"
            );
        }
    }

    #[test]
    fn findings_on_a_jsonl_line_get_that_line_and_their_column() {
        let mut findings = Findings::default();
        findings.error(&JsonPath::root().key("b"), "test", "here");
        findings.locate_on_line(br#"{"a": 1, "b": 2}"#, 7);
        assert_eq!(
            findings.iter().next().unwrap().position,
            Some(Position {
                line: 7,
                column: 15
            })
        );
    }
}
