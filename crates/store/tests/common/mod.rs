//! The shared harness lives in the crate (feature `testing`) so the server's tests use it too.

#![allow(unused_imports)]

pub use lora_files_store::testing::*;
