//! Temporary folders for tests, removed with everything in them when dropped: the
//! part of the `tempfile` crate the tests used. Cargo builds every dev-dependency
//! before any example, so tempfile's own dependencies (rustix, getrandom, fastrand,
//! …) were compiled before a user's first `cargo run --example mnist`.
//!
//! Each folder is new: `create_dir` fails on a name that exists, and the next
//! number is tried, so a folder left by a killed run is never reused.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A folder under the system's temporary folder, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

/// A new, empty folder `ferrocnn-test-<process>-<n>` in the system's temporary
/// folder.
pub fn tempdir() -> std::io::Result<TempDir> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ferrocnn-test-{}-{n}", std::process::id()));
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(TempDir(path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

impl TempDir {
    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A test that failed may leave files open or read-only; a folder left
        // behind is better than a second panic.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
