//! Helpers shared by the format crate's integration tests: fixture paths and
//! edited copies of real files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use lora_files_format::input::{self, FileReport, Mode};
use lora_files_format::Diagnostic;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

pub fn fixture(relative: &str) -> PathBuf {
    fixtures().join(relative)
}

pub fn read_fixture(relative: &str) -> String {
    std::fs::read_to_string(fixture(relative)).unwrap()
}

/// Validates `bytes` written to a temporary `name`.
pub fn validate_bytes(name: &str, bytes: &[u8]) -> FileReport {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    validate_path(&path)
}

pub fn validate_path(path: &Path) -> FileReport {
    input::read_file(path, Mode::Validate, |_| Ok::<(), ()>(())).unwrap()
}

/// The 1-based line on which `needle` first occurs in `text` (after `from`, when given).
pub fn line_of(text: &str, needle: &str, from: Option<&str>) -> usize {
    let start = from.map_or(0, |f| text.find(f).expect("anchor present"));
    let offset = start + text[start..].find(needle).expect("needle present");
    1 + text[..offset].matches('\n').count()
}

/// The first error with `code`, or a panic listing what was found.
pub fn error_with_code<'r>(report: &'r FileReport, code: &str) -> &'r Diagnostic {
    report
        .findings
        .errors()
        .find(|d| d.code == code)
        .unwrap_or_else(|| panic!("no {code} error; found {:#?}", report.findings.errors().collect::<Vec<_>>()))
}
