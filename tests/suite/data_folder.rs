//! Image folders: what `read_image_folder` and `TrainingData::load` make of the
//! layouts people keep, colour and size choices, and every bad input's message.

use crate::temp_dir;

use std::path::Path;

use ferrocnn::data::{
    fit_image, read_image, read_image_folder, DataError, Dataset, EvalSplit, Fit, FolderOptions, ImageFolder,
    Normalize, TrainingData,
};
use ferrocnn::viz::{GrayImage, RgbImage};

fn gray_png(path: &Path, (h, w): (usize, usize), pixel: impl Fn(usize, usize) -> u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut image = GrayImage::new(w, h, 0);
    for y in 0..h {
        for x in 0..w {
            image.put(x, y, pixel(y, x));
        }
    }
    image.save_png(path).unwrap();
}

fn rgb_png(path: &Path, (h, w): (usize, usize), pixel: impl Fn(usize, usize) -> [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut image = RgbImage::new(w, h, [0, 0, 0]);
    for y in 0..h {
        for x in 0..w {
            image.put(x as i64, y as i64, pixel(y, x));
        }
    }
    image.save_png(path).unwrap();
}

/// `root/<class>/<i>.png` for 3 classes, `per_class` 4×5 gray images each whose
/// pixels encode class, index and position.
fn gray_folder(root: &Path, per_class: usize) -> Vec<(String, Vec<u8>)> {
    let mut written = Vec::new();
    for class in ["cat", "ant", "dog"] {
        for i in 0..per_class {
            let value = |y: usize, x: usize| {
                (class.len() * 40 + class.as_bytes()[0] as usize + i * 7 + y * 5 + x) as u8
            };
            gray_png(&root.join(class).join(format!("{i:03}.png")), (4, 5), value);
            let pixels = (0..20).map(|j| value(j / 5, j % 5)).collect();
            written.push((class.to_string(), pixels));
        }
    }
    written
}

fn message(e: DataError) -> String {
    e.to_string()
}

#[test]
fn a_gray_folder_reads_back_pixel_for_pixel_with_classes_sorted_by_name() {
    let dir = temp_dir::tempdir().unwrap();
    let written = gray_folder(dir.path(), 3);
    let data = read_image_folder(dir.path(), &FolderOptions::default()).unwrap();
    assert_eq!(data.class_names().unwrap(), ["ant", "cat", "dog"]);
    assert_eq!(
        (data.len(), data.image_shape(), data.num_classes()),
        (9, (1, 4, 5), 3)
    );
    // Class by class in name order, files sorted: ant's three, then cat's, then dog's.
    for (i, class) in ["ant", "cat", "dog"].iter().enumerate() {
        let expected: Vec<&Vec<u8>> = written
            .iter()
            .filter(|(c, _)| c == class)
            .map(|(_, p)| p)
            .collect();
        for (k, pixels) in expected.into_iter().enumerate() {
            assert_eq!(data.image(i * 3 + k), pixels.as_slice(), "{class} image {k}");
            assert_eq!(data.label(i * 3 + k), i);
        }
    }
    assert_eq!(data.class_name(2), "dog");
}

#[test]
fn colour_comes_from_the_data_or_the_options() {
    let dir = temp_dir::tempdir().unwrap();
    let root = dir.path();
    gray_png(&root.join("a/0.png"), (2, 2), |_, _| 10);
    rgb_png(&root.join("b/0.png"), (2, 2), |y, x| [200, (y * 2 + x) as u8, 0]);
    // One colour image makes the set RGB; gray images repeat into the three planes.
    let data = read_image_folder(root, &FolderOptions::default()).unwrap();
    assert_eq!(data.image_shape(), (3, 2, 2));
    assert_eq!(data.image(0), [10; 12]);
    assert_eq!(data.image(1), [200, 200, 200, 200, 0, 1, 2, 3, 0, 0, 0, 0]);
    // Asked for gray, colour becomes Rec. 601 luma (PIL's convert("L")).
    let gray = FolderOptions {
        channels: Some(1),
        ..Default::default()
    };
    let data = read_image_folder(root, &gray).unwrap();
    assert_eq!(data.image_shape(), (1, 2, 2));
    let luma = |g: u32| ((200 * 299 + g * 587 + 500) / 1000) as u8;
    assert_eq!(data.image(1), [luma(0), luma(1), luma(2), luma(3)]);
}

#[test]
fn sizes_are_the_most_common_one_or_the_chosen_one() {
    let dir = temp_dir::tempdir().unwrap();
    let root = dir.path();
    gray_png(&root.join("a/0.png"), (4, 4), |_, _| 50);
    gray_png(&root.join("a/1.png"), (4, 4), |_, _| 60);
    gray_png(&root.join("b/0.png"), (2, 8), |_, x| (x * 30) as u8);
    let data = read_image_folder(root, &FolderOptions::default()).unwrap();
    assert_eq!(data.image_shape(), (1, 4, 4));
    // The 2×8 image is cropped to its centre 2×2, then scaled up to 4×4.
    let wide: Vec<u8> = (0..16).map(|j| ((j % 8) * 30) as u8).collect();
    assert_eq!(
        data.image(2),
        fit_image(&wide, (1, 2, 8), (4, 4), Fit::Crop).as_slice()
    );
    let stretched = FolderOptions {
        size: Some((2, 2)),
        fit: Fit::Stretch,
        channels: None,
    };
    let data = read_image_folder(root, &stretched).unwrap();
    assert_eq!(data.image_shape(), (1, 2, 2));
    assert_eq!(data.image(0), [50; 4]);
    assert_eq!(
        data.image(2),
        fit_image(&wide, (1, 2, 8), (2, 2), Fit::Stretch).as_slice()
    );
}

#[test]
fn jpegs_decode_close_to_what_was_encoded() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    // Written by PIL at quality 95 from x·16 (gray) and (x·16, y·20, 128) (RGB).
    let gray = read_image(golden.join("gray_16x12.jpg")).unwrap();
    assert_eq!((gray.height, gray.width, gray.channels), (12, 16, 1));
    let rgb = read_image(golden.join("rgb_16x12.jpg")).unwrap();
    assert_eq!((rgb.height, rgb.width, rgb.channels), (12, 16, 3));
    let mut worst = 0i32;
    for y in 0..12 {
        for x in 0..16 {
            let g = gray.pixels[y * 16 + x] as i32;
            worst = worst.max((g - (x * 16) as i32).abs());
            let px = &rgb.pixels[(y * 16 + x) * 3..][..3];
            let want = [(x * 16) as i32, (y * 20) as i32, 128];
            for c in 0..3 {
                worst = worst.max((px[c] as i32 - want[c]).abs());
            }
        }
    }
    assert!(worst <= 12, "JPEG decoded {worst} levels off");
    // A JPEG among PNGs is read like them.
    let dir = temp_dir::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("photo")).unwrap();
    std::fs::copy(golden.join("rgb_16x12.jpg"), dir.path().join("photo/a.JPG")).unwrap();
    rgb_png(&dir.path().join("drawing/b.png"), (12, 16), |_, _| [1, 2, 3]);
    let data = read_image_folder(dir.path(), &FolderOptions::default()).unwrap();
    assert_eq!(data.image_shape(), (3, 12, 16));
    assert_eq!(data.class_names().unwrap(), ["drawing", "photo"]);
}

#[test]
fn bad_folders_and_images_say_which_and_why() {
    let dir = temp_dir::tempdir().unwrap();
    let root = dir.path();
    gray_png(&root.join("a/0.png"), (2, 2), |_, _| 0);
    std::fs::create_dir_all(root.join("b")).unwrap();
    std::fs::write(root.join("b/notes.txt"), "not an image").unwrap();
    let e = message(ImageFolder::scan(root).unwrap_err());
    assert!(
        e.contains(&root.join("b").display().to_string()) && e.contains("no PNG or JPEG"),
        "{e}"
    );

    std::fs::write(root.join("b/broken.png"), b"\x89PNG\r\n\x1a\nshort").unwrap();
    let e = message(read_image_folder(root, &FolderOptions::default()).unwrap_err());
    assert!(e.contains("broken.png"), "{e}");
    std::fs::remove_file(root.join("b/broken.png")).unwrap();
    std::fs::write(root.join("b/fake.jpg"), b"GIF89a....").unwrap();
    let e = message(read_image_folder(root, &FolderOptions::default()).unwrap_err());
    assert!(e.contains("fake.jpg") && e.contains("not a PNG or JPEG"), "{e}");
    std::fs::remove_file(root.join("b/fake.jpg")).unwrap();
    std::fs::write(root.join("b/scan.bmp"), b"BM").unwrap();
    let e = message(ImageFolder::scan(root).unwrap_err());
    assert!(e.contains("scan.bmp") && e.contains("convert them to PNG"), "{e}");

    let empty = temp_dir::tempdir().unwrap();
    let e = message(ImageFolder::scan(empty.path()).unwrap_err());
    assert!(e.contains("no class folders"), "{e}");
    let e = message(ImageFolder::scan(empty.path().join("missing")).unwrap_err());
    assert!(e.contains("not found"), "{e}");

    // Headers (and a CRC nobody checks yet) that claim a huge size are refused
    // before anything is allocated.
    let huge = temp_dir::tempdir().unwrap();
    for i in 0..2 {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&[0, 1, 0, 0, 0, 1, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
        std::fs::create_dir_all(huge.path().join("a")).unwrap();
        std::fs::write(huge.path().join(format!("a/{i}.png")), png).unwrap();
    }
    let e = message(read_image_folder(huge.path(), &FolderOptions::default()).unwrap_err());
    assert!(e.contains("65536×65536") && e.contains("--image-size"), "{e}");

    let good = temp_dir::tempdir().unwrap();
    gray_folder(good.path(), 1);
    for (options, says) in [
        (
            FolderOptions {
                channels: Some(2),
                ..Default::default()
            },
            "1 or 3 channels",
        ),
        (
            FolderOptions {
                size: Some((0, 4)),
                ..Default::default()
            },
            "sides must be",
        ),
    ] {
        let e = message(read_image_folder(good.path(), &options).unwrap_err());
        assert!(e.contains(says), "{e}");
    }
}

#[test]
fn a_train_and_test_layout_is_found_and_shares_classes_shape_and_statistics() {
    let dir = temp_dir::tempdir().unwrap();
    let root = dir.path();
    gray_folder(&root.join("train"), 4);
    // The test split lacks `cat` and holds larger images: it takes train's labels and size.
    for (class, i) in [("ant", 0), ("dog", 1)] {
        gray_png(
            &root.join("val").join(class).join(format!("{i}.png")),
            (8, 10),
            |_, _| 100,
        );
    }
    let data = TrainingData::load(root, 7).unwrap();
    assert_eq!(data.evaluation, EvalSplit::Test(root.join("val")));
    assert!(data.found.contains("3 classes (ant, cat, dog)"), "{}", data.found);
    assert_eq!(data.test.image_shape(), (1, 4, 5));
    assert_eq!(data.test.labels(), [0, 2]);
    assert_eq!(data.test.image(0), [100; 20]);
    let stats = Normalize::of(&data.train).unwrap();
    assert_eq!(data.train.normalization(), &stats);
    assert_eq!(data.test.normalization(), &stats);

    // A test class the training set does not have is an error naming it.
    gray_png(&root.join("val/eel/0.png"), (4, 5), |_, _| 0);
    let e = message(TrainingData::load(root, 7).unwrap_err());
    assert!(e.contains("\"eel\"") && e.contains("training classes"), "{e}");
}

#[test]
fn a_single_folder_holds_a_tenth_out_for_validation() {
    let dir = temp_dir::tempdir().unwrap();
    gray_folder(dir.path(), 10);
    let data = TrainingData::load(dir.path(), 3).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (27, 3));
    assert!(matches!(data.evaluation, EvalSplit::Validation(_)));
    assert_eq!(data.test.class_names().unwrap(), ["ant", "cat", "dog"]);
}

#[test]
fn normalisation_statistics_are_the_training_pixels_mean_and_std() {
    // Channel 0 is 0 and 255 in equal parts (mean ½, std ½); channel 1 never varies.
    let pixels = vec![0, 0, 7, 7, 255, 255, 7, 7];
    let data = Dataset::from_raw(pixels, vec![0, 1], 2, 1, 2).unwrap();
    let stats = Normalize::of(&data).unwrap();
    assert_eq!(stats.mean(), [0.5, 7.0 / 255.0]);
    assert_eq!(stats.std(), [0.5, 1.0]);
    let x = data.clone().with_normalization(stats).to_array(0..2);
    assert_eq!(x.as_slice().unwrap(), [-1.0, -1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    for (mean, std) in [
        (vec![0.5], vec![0.0]),
        (vec![f32::NAN], vec![1.0]),
        (vec![0.1, 0.2], vec![1.0]),
    ] {
        assert!(Normalize::new(mean, std).is_err());
    }
}
