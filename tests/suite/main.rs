//! Every integration test, in one binary. Each file in `tests/` used to be its own
//! test binary, and each linked ferrocnn and its dependencies and compiled the
//! shared helpers again at opt-level 3: 37 links were most of a clean `cargo test`
//! (see BENCHMARKS.md, "Build time"). A file here is a module, so a test's name is
//! `file::test`: `cargo test --test suite cli_mnist::` runs one file's tests.
//!
//! What the modules share in one process:
//! - the allocator: [`peak_alloc::Tracking`] counts each thread's bytes, so the
//!   readers' allocation caps are measured as before, and the other tests only pay
//!   two thread-local updates per allocation;
//! - the [`ferrocnn::runtime::Simd`] setting: every test that changes it goes through
//!   `common::with_simd`, whose one lock now covers all the files; the others may run
//!   under either setting, which give the same results bit for bit;
//! - the temporary folders: `temp_dir` numbers them per process.

mod cli_support;
mod common;
mod peak_alloc;
mod temp_dir;

mod cli_export_onnx;
mod cli_finetune;
mod cli_folder;
mod cli_inspect;
mod cli_mnist;
mod cli_mnist_resume;
mod cli_predict;
mod conv_algorithms;
mod conv_pool;
mod custom_module;
mod data_csv;
mod data_dataset;
mod data_files;
mod data_folder;
mod data_idx;
mod dropout;
mod explore_browser;
mod finetune;
mod gradcheck_ops;
mod io_checkpoint;
mod io_data_spec;
mod io_fuzz;
mod io_import;
mod io_model;
mod io_onnx;
mod layouts;
mod nn_footprint;
mod nn_layers;
mod numerics;
mod optim;
mod residual_fused;
mod resume;
mod tape;
mod train_end_to_end;
mod viz;
mod viz_attribution;
mod viz_png_fuzz;

#[global_allocator]
static ALLOC: peak_alloc::Tracking = peak_alloc::Tracking;

/// A file in this folder that is not declared above is never compiled, and its
/// tests silently never run.
#[test]
fn every_file_here_is_a_module() {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/suite");
    let declared = include_str!("main.rs");
    for entry in std::fs::read_dir(&here).unwrap() {
        let path = entry.unwrap().path();
        let name = match path.extension() {
            Some(ext) if ext == "rs" => path.file_stem(),
            None if path.join("mod.rs").exists() => path.file_name(),
            _ => continue,
        };
        let name = name.unwrap().to_str().unwrap();
        if name != "main" {
            assert!(
                declared.contains(&format!("\nmod {name};\n")),
                "tests/suite/{name} is not a module of tests/suite/main.rs: add `mod {name};`"
            );
        }
    }
}
