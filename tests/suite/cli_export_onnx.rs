//! The `export_onnx` example driven as a user drives it: the shipped model becomes
//! the file the library writes; the input shape is assumed or given; bad input is a
//! usage error or one `error:` line, and the model file is never written over.

use crate::cli_support;
use crate::temp_dir;

use cli_support::{arg, example, run, save, small_net, snapshot};
use ferrocnn::io::{load_model, to_onnx_bytes};

#[test]
fn the_shipped_model_exports_as_the_library_writes_it() {
    let dir = temp_dir::tempdir().unwrap();
    let out = dir.path().join("mnist.onnx");
    let outcome = run(example("export_onnx"), &["models/mnist.bin", arg(&out)]);
    outcome.assert_ok();
    assert!(
        outcome.stdout.contains("input [N, 1, 28, 28] → logits [N, 10]"),
        "{outcome:#?}"
    );
    assert!(outcome.stdout.contains("Netron"), "{outcome:#?}");
    let model = load_model("models/mnist.bin").unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        to_onnx_bytes(model.as_ref(), (1, 28, 28)).unwrap()
    );
}

#[test]
fn input_gives_the_image_shape_the_model_file_does_not_record() {
    let dir = temp_dir::tempdir().unwrap();
    let model = save(&small_net(3, 12, 4), dir.path(), "rgb.bin");
    let out = dir.path().join("rgb.onnx");
    // 28×28 with the first convolution's 3 channels is assumed, and does not fit.
    run(example("export_onnx"), &[arg(&model), arg(&out)])
        .assert_error(&["does not take 3×28×28 images", "--input C,H,W"]);
    assert!(!out.exists());
    let outcome = run(
        example("export_onnx"),
        &[arg(&model), arg(&out), "--input", "3,12,12"],
    );
    outcome.assert_ok();
    assert!(
        outcome.stdout.contains("input [N, 3, 12, 12] → logits [N, 4]"),
        "{outcome:#?}"
    );
    // Given, a shape the model cannot take is the library's error, naming the layer.
    run(
        example("export_onnx"),
        &[arg(&model), arg(&out), "--input", "1,12,12"],
    )
    .assert_error(&["cannot export", "conv1", "[1, 12, 12]"]);
}

#[test]
fn bad_arguments_are_usage_errors_and_the_model_is_never_overwritten() {
    let dir = temp_dir::tempdir().unwrap();
    let model = save(&small_net(1, 28, 10), dir.path(), "m.bin");
    let before = snapshot(&[&model]);
    run(example("export_onnx"), &[arg(&model), arg(&model)]).assert_usage("OUT", "model file being exported");
    let out = dir.path().join("m.onnx");
    for bad in ["1,28", "0,28,28", "a,b,c"] {
        run(example("export_onnx"), &[arg(&model), arg(&out), "--input", bad])
            .assert_usage("--input", "C,H,W");
    }
    run(
        example("export_onnx"),
        &[arg(&dir.path().join("missing.bin")), arg(&out)],
    )
    .assert_error(&["missing.bin"]);
    assert_eq!(snapshot(&[&model]), before);
    assert!(!out.exists());
}
