//! Images in CSV (Kaggle's digit-recognizer layout): the same images and labels as
//! the IDX files they were written from, with or without a header, labelled or
//! not; and every malformed line an error naming the line and column.

use crate::temp_dir;

use ferrocnn::data::{read_csv, DataError, Dataset, Mnist};
use std::fmt::Write as _;
use std::path::PathBuf;

/// Writes the first `n` MNIST training images as CSV; returns the path.
fn mnist_csv(dir: &std::path::Path, n: usize, header: bool, labelled: bool) -> PathBuf {
    let mnist = Mnist::load("datasets/mnist").expect("shipped MNIST files");
    let mut text = String::new();
    if header {
        let columns: Vec<String> = (0..784).map(|i| format!("pixel{i}")).collect();
        let label = if labelled { "label," } else { "" };
        let _ = writeln!(text, "{label}{}", columns.join(","));
    }
    for i in 0..n {
        let pixels: Vec<String> = mnist.train.image(i).iter().map(|p| p.to_string()).collect();
        if labelled {
            let _ = write!(text, "{},", mnist.train.label(i));
        }
        let _ = writeln!(text, "{}", pixels.join(","));
    }
    let path = dir.join(format!("h{header}_l{labelled}.csv"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn csv_files_hold_the_same_images_as_the_idx_files() {
    let dir = temp_dir::tempdir().unwrap();
    let idx = Mnist::load("datasets/mnist").unwrap().train.take(50);
    for header in [true, false] {
        let data = Dataset::from_csv(mnist_csv(dir.path(), 50, header, true)).unwrap();
        assert_eq!(data.image_shape(), (1, 28, 28));
        assert_eq!(data.labels(), idx.labels(), "header {header}");
        assert_eq!(data.pixels(), idx.pixels(), "header {header}");
        let test = read_csv(mnist_csv(dir.path(), 50, header, false)).unwrap();
        assert_eq!((test.labels, test.side, test.rows), (None, 28, 50));
        assert_eq!(test.pixels, idx.pixels());
    }
}

#[test]
fn malformed_lines_are_errors_naming_the_line_and_column() {
    let dir = temp_dir::tempdir().unwrap();
    let header = "label,p0,p1,p2,p3";
    for (body, line, column, says) in [
        ("1,0,0,0\n", 2, None, "4 columns where the first line has 5"),
        ("1,0,0,0,0,9\n", 2, None, "6 columns"),
        (
            "1,0,0,0,0\n2,0,256,0,0\n",
            3,
            Some(3),
            "pixel value 256 is above 255",
        ),
        ("1,0,0,x,0\n", 2, Some(4), "\"x\" is not a whole number"),
        ("1,0,-1,0,0\n", 2, Some(3), "not a whole number"),
        ("12345,0,0,0,0\n", 2, Some(1), "label 12345 is above 9999"),
        ("1,0,0,0,0\n\n1,0,0,0,0\n", 3, None, "an empty line"),
    ] {
        let path = dir.path().join("bad.csv");
        std::fs::write(&path, format!("{header}\n{body}")).unwrap();
        let err = Dataset::from_csv(&path).unwrap_err();
        match &err {
            DataError::Csv {
                line: l, column: c, ..
            } => assert_eq!((*l, *c), (line, column), "{err}"),
            other => panic!("{body:?}: {other:?}"),
        }
        let message = err.to_string();
        let at = match column {
            Some(c) => format!("bad.csv:{line}:{c}: "),
            None => format!("bad.csv:{line}: "),
        };
        assert!(message.contains(&at) && message.contains(says), "{message}");
    }
    for (text, says) in [
        ("", "the file is empty"),
        (
            "label,a,b,c\n1,2,3,4\n",
            "4 columns are not a label and a square gray image",
        ),
        ("1,2,3\n", "3 columns are not a square gray image"),
        ("p0,p1,p2,p3\n1,2,3,4\n", "no labels"),
    ] {
        let path = dir.path().join("odd.csv");
        std::fs::write(&path, text).unwrap();
        let message = Dataset::from_csv(&path).unwrap_err().to_string();
        assert!(
            message.contains("odd.csv:") && message.contains(says),
            "{text:?}: {message}"
        );
    }
    let missing = Dataset::from_csv(dir.path().join("none.csv")).unwrap_err();
    assert!(matches!(missing, DataError::NotFound { .. }), "{missing:?}");
}

#[test]
fn windows_line_ends_and_spaces_are_read() {
    let dir = temp_dir::tempdir().unwrap();
    let path = dir.path().join("crlf.csv");
    std::fs::write(&path, "label,p0,p1,p2,p3\r\n3, 0,255 ,7,8\r\n1,1,2,3,4").unwrap();
    let data = Dataset::from_csv(&path).unwrap();
    assert_eq!(data.labels(), &[3, 1]);
    assert_eq!(data.pixels(), &[0, 255, 7, 8, 1, 2, 3, 4]);
    assert_eq!(data.image_shape(), (1, 2, 2));
}

#[test]
fn training_data_is_found_by_what_is_at_the_path() {
    use ferrocnn::data::{EvalSplit, TrainingData};
    let idx = TrainingData::load("datasets/mnist", 0).unwrap();
    assert!(idx.found.starts_with("MNIST IDX files"), "{}", idx.found);
    assert_eq!((idx.train.len(), idx.test.len()), (60_000, 10_000));
    assert!(matches!(idx.evaluation, EvalSplit::Test(_)));

    let dir = temp_dir::tempdir().unwrap();
    let train = mnist_csv(dir.path(), 50, true, true);
    let csv = dir.path().join("train.csv");
    std::fs::rename(&train, &csv).unwrap();
    // Alone: a tenth held out, drawn with the seed, disjoint from the rest.
    let alone = TrainingData::load(&csv, 3).unwrap();
    assert_eq!((alone.train.len(), alone.test.len()), (45, 5));
    assert!(
        matches!(&alone.evaluation, EvalSplit::Validation(why) if why.contains("no test.csv")),
        "{:?}",
        alone.evaluation
    );
    // Kaggle's test.csv (no labels) is for predictions: still a validation split.
    std::fs::rename(
        mnist_csv(dir.path(), 20, true, false),
        dir.path().join("test.csv"),
    )
    .unwrap();
    let kaggle = TrainingData::load(&csv, 3).unwrap();
    assert!(
        matches!(&kaggle.evaluation, EvalSplit::Validation(why) if why.contains("no labels")),
        "{:?}",
        kaggle.evaluation
    );
    // A labelled test.csv is the test set.
    std::fs::rename(
        mnist_csv(dir.path(), 20, false, true),
        dir.path().join("test.csv"),
    )
    .unwrap();
    let labelled = TrainingData::load(&csv, 3).unwrap();
    assert_eq!((labelled.train.len(), labelled.test.len()), (50, 20));
    assert!(matches!(labelled.evaluation, EvalSplit::Test(_)));

    let other = dir.path().join("notes.txt");
    std::fs::write(&other, "hello").unwrap();
    let err = TrainingData::load(&other, 0).unwrap_err().to_string();
    assert!(
        err.contains("neither a folder of MNIST IDX files nor a .csv file"),
        "{err}"
    );
    assert!(matches!(
        TrainingData::load(dir.path().join("none.csv"), 0),
        Err(DataError::NotFound { .. })
    ));
}
