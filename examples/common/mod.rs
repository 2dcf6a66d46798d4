//! What the examples share: the command line and its flags' parsers, the report of
//! which dataset files are read, and the checks that a model fits a dataset, so that
//! every example says the same thing the same way about a bad flag, an ambiguous
//! folder or a mismatch.
//!
//! Cargo builds each `examples/*.rs` as a program of its own and does not take this
//! folder for one (it has no `main.rs`); an example includes it with `mod common;`.
//! Each example uses a part of it, hence `allow(dead_code)`.
#![allow(dead_code)]

pub mod args;
pub mod digit;
pub mod files;
pub mod fit;

/// Every example that includes this folder (the trainers and the bench among them)
/// starts its tensors' buffers on cache lines: see `AlignedAlloc` for why and what
/// it measured.
#[global_allocator]
static ALLOC: ferrocnn::runtime::AlignedAlloc = ferrocnn::runtime::AlignedAlloc;

/// A run's exit code: success, or its error as one `error: …` line on standard
/// error and exit code 1 (usage errors exit with 2 in `args` before this).
pub fn exit_code(result: Result<(), Box<dyn std::error::Error>>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
