//! The crate's thin file-system layer: what it needs of folders beyond
//! reading one file. The formats' own modules take paths or bytes and walk nothing.

pub mod walk;

pub use walk::{collect_input_files, gather_input_files, InputFiles, InputProblem};
