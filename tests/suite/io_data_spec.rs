//! A model file keeps the data its model was trained for (`io::DataSpec`: image
//! shape, class names, normalisation): saved, loaded, carried by checkpoints,
//! absent from older files, and checked when read.

use crate::cli_support;
use crate::temp_dir;

use ferrocnn::data::Normalize;
use ferrocnn::io::{
    load_model, load_model_and_data, save_model, save_model_with_data, DataSpec, ModelRecord,
};
use serde_json::{json, Value};

fn spec() -> DataSpec {
    DataSpec {
        input: (3, 8, 8),
        classes: vec!["cat".into(), "dog".into(), "eel".into()],
        normalize: Normalize::new(vec![0.4, 0.5, 0.6], vec![0.2, 0.25, 0.3]).unwrap(),
    }
}

#[test]
fn a_spec_saved_with_a_model_loads_back_whole() {
    let dir = temp_dir::tempdir().unwrap();
    let model = cli_support::small_net(3, 8, 3);
    let path = dir.path().join("m.bin");
    save_model_with_data(&model, &spec(), &path).unwrap();
    let (loaded, data) = load_model_and_data(&path).unwrap();
    assert_eq!(data, Some(spec()));
    assert_eq!(loaded.state_dict(), load_model(&path).unwrap().state_dict());
    // A file saved without one, like every file before specs, has none.
    save_model(&model, &path).unwrap();
    assert_eq!(load_model_and_data(&path).unwrap().1, None);
    // The shipped model predates specs: it loads, without one.
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/models/mnist.bin");
    assert_eq!(load_model_and_data(shipped).unwrap().1, None);
}

#[test]
fn a_record_carries_its_spec_into_checkpoints() {
    let model = cli_support::small_net(3, 8, 3);
    let record = ModelRecord::of(&model).with_data(&spec()).unwrap();
    assert_eq!(record.data().unwrap(), Some(spec()));
    assert_eq!(ModelRecord::of(&model).data().unwrap(), None);
    let mut bad = spec();
    bad.classes[2] = "cat".into();
    let e = ModelRecord::of(&model).with_data(&bad).unwrap_err().to_string();
    assert!(e.contains("classes 0 and 2 are both named \"cat\""), "{e}");
}

/// A model file with `data` put into its architecture JSON as given, behind a
/// valid checksum.
fn file_with_data(dir: &std::path::Path, data: Value) -> std::path::PathBuf {
    let model = cli_support::small_net(3, 8, 3);
    let mut record = ModelRecord::of(&model);
    let mut architecture: Value = serde_json::from_str(&record.architecture).unwrap();
    architecture["data"] = data;
    record.architecture = architecture.to_string();
    let path = dir.join("crafted.bin");
    cli_support::write_record(&path, &record);
    path
}

#[test]
fn a_spec_that_does_not_hold_together_is_refused_naming_what() {
    let dir = temp_dir::tempdir().unwrap();
    let good =
        json!({"input": [3, 8, 8], "classes": ["a", "b", "c"], "normalize": {"mean": [0.5], "std": [0.5]}});
    assert!(load_model_and_data(file_with_data(dir.path(), good.clone())).is_ok());
    let cases = [
        ("/normalize/std", json!([0.0]), "standard deviation 0"),
        (
            "/normalize/mean",
            json!([0.1, 0.2]),
            "2 means and 1 standard deviations",
        ),
        ("/classes", json!(["a", "a", "c"]), "both named"),
        ("/classes", json!([]), "data.classes is empty"),
        ("/input", json!([3, 0, 8]), "is not an image shape"),
        (
            "/input",
            json!([2, 8, 8]),
            "data.normalize has 3 statistics for 2 channels",
        ),
    ];
    for (pointer, value, says) in cases {
        let mut data = good.clone();
        if pointer == "/input" && value[0] == 2 {
            data["normalize"] = json!({"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]});
        }
        *data.pointer_mut(pointer).unwrap() = value;
        let path = file_with_data(dir.path(), data);
        let e = load_model_and_data(&path)
            .map(|_| ())
            .expect_err("refused")
            .to_string();
        assert!(e.contains("crafted.bin") && e.contains(says), "{pointer}: {e}");
        // Loading the model alone checks the spec too: the file is damaged.
        assert!(load_model(&path).is_err());
    }
}
