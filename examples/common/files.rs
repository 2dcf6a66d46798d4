//! Files given on the command line: which dataset files are read, and whether an
//! output would land on an input.

use std::path::Path;

use ferrocnn::data::DataFile;

/// Prints, for each file the folder holds under more than one name (`x` and
/// `x.gz`), which one is read and which are ignored: they need not be the same data.
pub fn report_ignored<'a>(files: impl IntoIterator<Item = &'a DataFile>) {
    for file in files.into_iter().filter(|f| !f.ignored.is_empty()) {
        println!("reading {file}");
    }
}

/// Whether two paths name the same file (compared as given when one does not exist).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
