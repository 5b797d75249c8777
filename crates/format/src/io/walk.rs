//! Finding input files: folders walked to their `*.json` files. The one place
//! in this crate that lists folders; the readers and checks take paths or bytes.

use std::io;
use std::path::{Path, PathBuf};

/// Inputs expanded to files, and the inputs that could not be (missing,
/// unreadable, or a link back into a folder being walked).
#[derive(Debug, Default)]
pub struct InputFiles {
    pub files: Vec<PathBuf>,
    pub problems: Vec<InputProblem>,
}

/// One input path that gave no files, and why.
#[derive(Debug)]
pub struct InputProblem {
    pub path: PathBuf,
    pub error: io::Error,
}

impl std::fmt::Display for InputProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

/// Expands inputs: files as given, folders recursively to their `*.json`
/// files in name order. A path that fails is noted and the rest go on; a
/// folder reached again through a link (a loop) is walked once.
pub fn gather_input_files(inputs: &[PathBuf]) -> InputFiles {
    let mut gathered = InputFiles::default();
    for input in inputs {
        match std::fs::metadata(input) {
            Ok(metadata) if metadata.is_dir() => {
                let mut found = Vec::new();
                let mut walked = Vec::new();
                walk(input, &metadata, &mut walked, &mut found, &mut gathered.problems);
                found.sort();
                gathered.files.extend(found);
            }
            Ok(_) => gathered.files.push(input.clone()),
            Err(error) => gathered.problems.push(InputProblem { path: input.clone(), error }),
        }
    }
    gathered
}

/// [`gather_input_files`], failing on the first input that gives no files.
pub fn collect_input_files(inputs: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let gathered = gather_input_files(inputs);
    match gathered.problems.into_iter().next() {
        Some(problem) => Err(io::Error::new(problem.error.kind(), problem.to_string())),
        None => Ok(gathered.files),
    }
}

/// The identity of a folder, so one reached again through a link is recognised.
fn folder_identity(metadata: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (metadata.dev(), metadata.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        (0, 0)
    }
}

/// `walked`: the folders from the top input down to `dir` (a link to one of them is a loop).
fn walk(dir: &Path, metadata: &std::fs::Metadata, walked: &mut Vec<(u64, u64)>, found: &mut Vec<PathBuf>, problems: &mut Vec<InputProblem>) {
    let identity = folder_identity(metadata);
    if cfg!(unix) && walked.contains(&identity) {
        let error = io::Error::other("a link back to a folder it is inside of (a loop); not followed");
        problems.push(InputProblem { path: dir.to_owned(), error });
        return;
    }
    walked.push(identity);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            problems.push(InputProblem { path: dir.to_owned(), error });
            walked.pop();
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                problems.push(InputProblem { path: dir.to_owned(), error });
                continue;
            }
        };
        let path = entry.path();
        // The entry's type comes with the listing; only a link needs a look at its target.
        let is_dir = match entry.file_type() {
            Ok(file_type) if file_type.is_dir() => Some(entry.metadata()),
            Ok(file_type) if file_type.is_symlink() => std::fs::metadata(&path).ok().filter(std::fs::Metadata::is_dir).map(Ok),
            Ok(_) => None,
            Err(error) => Some(Err(error)),
        };
        match is_dir {
            Some(Ok(metadata)) => walk(&path, &metadata, walked, found, problems),
            Some(Err(error)) => problems.push(InputProblem { path, error }),
            None if path.extension().is_some_and(|e| e == "json") => found.push(path),
            None => {}
        }
    }
    walked.pop();
}
