//! The pictures of `ferrocnn::viz`: grid layout, per-tile normalization, PNG round
//! trips and error handling, training curves, feature maps.

use crate::common;
use crate::temp_dir;

use ferrocnn::nn::Module;
use ferrocnn::train::EpochStats;
use ferrocnn::viz::{
    normalize_tile, read_grayscale_png, resize_gray, save_conv_filters, save_feature_maps, save_image_grid,
    save_training_curves, Filter, GrayImage, Grid, TileRange, VizError, CURVES_HEIGHT, CURVES_WIDTH,
};
use ndarray::{array, Array2, Array4};
use rand::SeedableRng;

fn png_size(path: &std::path::Path) -> (usize, usize) {
    let (_, h, w) = read_grayscale_png(path).expect("a readable PNG");
    (w, h)
}

#[test]
fn grid_size_counts_tiles_border_and_scale() {
    let tiles: Vec<Array2<f32>> = (0..5).map(|i| Array2::from_elem((3, 4), i as f32)).collect();
    let views: Vec<_> = tiles.iter().map(|t| t.view()).collect();
    let grid = Grid::new(2).with_scale(3).with_border(2);
    let image = grid.render(&views).unwrap();
    // 2 columns × 4·3 px + 3 borders of 2; 3 rows × 3·3 px + 4 borders of 2.
    assert_eq!((image.width, image.height), (2 * 12 + 3 * 2, 3 * 9 + 4 * 2));
    assert_eq!(grid.size(5, (3, 4)), (image.width, image.height));
    // Fewer tiles than columns: the grid shrinks to the tiles.
    assert_eq!(Grid::new(8).size(3, (2, 2)), (3 * 2 + 4, 2 + 2));
    // Border pixels have the border colour; the empty sixth cell too.
    assert_eq!(image.get(0, 0), Grid::BORDER);
    assert_eq!(image.get(image.width - 3, image.height - 3), Grid::BORDER);
}

#[test]
fn grid_enlarges_by_nearest_neighbour() {
    let tile = array![[0.0f32, 1.0], [1.0, 0.0]];
    let image = Grid::new(1)
        .with_scale(3)
        .with_border(1)
        .render(&[tile.view()])
        .unwrap();
    assert_eq!((image.width, image.height), (8, 8));
    for (x, y, v) in [
        (1, 1, 0),
        (3, 3, 0),
        (4, 1, 255),
        (6, 3, 255),
        (1, 4, 255),
        (6, 6, 0),
    ] {
        assert_eq!(image.get(x, y), [v; 3], "pixel ({x}, {y})");
    }
}

#[test]
fn grid_normalizes_each_tile_separately() {
    let small = array![[0.0f32, 0.01]];
    let large = array![[-100.0f32, 100.0]];
    let image = Grid::new(2)
        .with_border(0)
        .render(&[small.view(), large.view()])
        .unwrap();
    let row: Vec<u8> = (0..4).map(|x| image.get(x, 0)[0]).collect();
    assert_eq!(row, [0, 255, 0, 255]);
}

#[test]
fn per_tile_normalization_known_values() {
    assert_eq!(
        normalize_tile(array![[2.0f32, 4.0], [6.0, 12.0]].view()),
        array![[0u8, 51], [102, 255]]
    );
    // Constant and non-finite values are black, and do not stretch the range.
    assert_eq!(normalize_tile(array![[5.0f32, 5.0]].view()), array![[0u8, 0]]);
    assert_eq!(
        normalize_tile(array![[f32::NAN, 1.0, 3.0]].view()),
        array![[0u8, 0, 255]]
    );
}

#[test]
fn fixed_range_shows_raw_values() {
    let tile = array![[0.0f32, 51.0, 255.0, 300.0]];
    let image = Grid::new(1)
        .with_border(0)
        .with_range(TileRange::Fixed { min: 0.0, max: 255.0 })
        .render(&[tile.view()])
        .unwrap();
    let row: Vec<u8> = (0..4).map(|x| image.get(x, 0)[0]).collect();
    assert_eq!(row, [0, 51, 255, 255]);
}

#[test]
fn colour_tiles_keep_their_balance_under_one_range() {
    // One tile of three planes: red ramps 0..4, green is 2, blue is 4 everywhere.
    let tile = ndarray::Array3::from_shape_fn((3, 1, 3), |(c, _, x)| match c {
        0 => 2.0 * x as f32,
        1 => 2.0,
        _ => 4.0,
    });
    let gray = array![[1.0f32, 0.0, 1.0]];
    let image = Grid::new(2)
        .with_border(0)
        .render_colour(&[tile.view(), gray.view().insert_axis(ndarray::Axis(0))])
        .unwrap();
    // One range (0..4) over the three planes: the colours keep their proportions.
    assert_eq!(image.get(0, 0), [0, 128, 255]);
    assert_eq!(image.get(2, 0), [255, 128, 255]);
    // A one-plane tile is gray.
    assert_eq!(image.get(4, 0), [0; 3]);
    assert_eq!(image.get(5, 0), [255; 3]);
    let two = ndarray::Array3::<f32>::zeros((2, 1, 1));
    assert!(matches!(
        Grid::new(1).render_colour(&[two.view()]),
        Err(VizError::Shape(_))
    ));
}

#[test]
fn an_rgb_image_grid_and_the_filters_of_a_colour_net_are_drawn_in_colour() {
    let dir = temp_dir::tempdir().unwrap();
    // A 1×2 RGB image, planes as a dataset keeps them: a red pixel, then a blue one.
    let image: [u8; 6] = [255, 0, 0, 0, 0, 255];
    let path = dir.path().join("grid.png");
    save_image_grid(&[(&image, "A")], (1, 2), 1, 1, &path).unwrap();
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    // Inside the 1 px border: (1, 1) red, (2, 1) blue.
    let at = |x: usize, y: usize| &buf[y * info.line_size + 3 * x..][..3];
    assert_eq!((at(1, 1), at(2, 1)), (&[255, 0, 0][..], &[0, 0, 255][..]));
    let mixed: [&[u8]; 2] = [&image, &image[..2]];
    assert!(matches!(
        save_image_grid(&[(mixed[0], "a"), (mixed[1], "b")], (1, 2), 2, 1, &path),
        Err(VizError::Shape(_))
    ));

    // Filters over three input channels: one colour tile per filter.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let conv = ferrocnn::nn::Conv2d::new(3, 4, (3, 3), &mut rng);
    let path = dir.path().join("filters.png");
    save_conv_filters(&conv, &path, 2).unwrap();
    // 4 tiles of 3×3 at scale 2 in 2 columns, 1 px borders: 2·6 + 3 wide.
    assert_eq!(png_size(&path), (15, 15));
}

#[test]
fn grid_rejects_mixed_shapes_and_no_tiles() {
    let (a, b) = (Array2::<f32>::zeros((2, 2)), Array2::<f32>::zeros((3, 2)));
    assert!(matches!(
        Grid::new(2).render(&[a.view(), b.view()]),
        Err(VizError::Shape(_))
    ));
    assert!(matches!(Grid::new(2).render(&[]), Err(VizError::Empty(_))));
    assert!(matches!(
        Grid::new(2).render_with_captions(&[a.view()], &["1", "2"]),
        Err(VizError::Shape(_))
    ));
}

#[test]
fn gray_png_round_trip() {
    let dir = temp_dir::tempdir().unwrap();
    let path = dir.path().join("nested/round.png");
    let image = GrayImage {
        width: 5,
        height: 3,
        pixels: (0..15).map(|i| (i * 17) as u8).collect(),
    };
    image.save_png(&path).unwrap();
    let (pixels, h, w) = read_grayscale_png(&path).unwrap();
    assert_eq!((h, w), (3, 5));
    assert_eq!(pixels, image.pixels);
}

#[test]
fn rgb_png_reads_as_luma() {
    let dir = temp_dir::tempdir().unwrap();
    let path = dir.path().join("rgb.png");
    let image = ferrocnn::viz::RgbImage {
        width: 3,
        height: 1,
        pixels: vec![255, 0, 0, 0, 255, 0, 255, 255, 255],
    };
    image.save_png(&path).unwrap();
    let (pixels, _, _) = read_grayscale_png(&path).unwrap();
    assert_eq!(pixels, [76, 150, 255]);
}

#[test]
fn read_grayscale_png_composites_alpha_over_white() {
    let dir = temp_dir::tempdir().unwrap();
    let path = dir.path().join("rgba.png");
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut encoder = png::Encoder::new(file, 2, 1);
    encoder.set_color(png::ColorType::Rgba);
    let mut writer = encoder.write_header().unwrap();
    // Opaque black, fully transparent black.
    writer.write_image_data(&[0, 0, 0, 255, 0, 0, 0, 0]).unwrap();
    writer.finish().unwrap();
    assert_eq!(read_grayscale_png(&path).unwrap().0, [0, 255]);
}

#[test]
fn read_grayscale_png_rejects_non_png() {
    let dir = temp_dir::tempdir().unwrap();
    let path = dir.path().join("not.png");
    std::fs::write(&path, b"this is not an image").unwrap();
    let err = read_grayscale_png(&path).unwrap_err();
    assert!(matches!(err, VizError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("not.png"), "{err}");
}

#[test]
fn read_grayscale_png_rejects_truncated_png() {
    let dir = temp_dir::tempdir().unwrap();
    let path = dir.path().join("cut.png");
    let pixels: Vec<u8> = (0..64 * 64).map(|i| (i * 7 % 251) as u8).collect();
    GrayImage {
        width: 64,
        height: 64,
        pixels,
    }
    .save_png(&path)
    .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = read_grayscale_png(&path).unwrap_err();
    assert!(matches!(err, VizError::Decode { .. }), "{err:?}");
    assert!(matches!(
        read_grayscale_png(dir.path().join("missing.png")),
        Err(VizError::Io { .. })
    ));
}

#[test]
fn resize_nearest_and_bilinear() {
    assert_eq!(
        resize_gray(&[0, 255], (1, 2), (1, 4), Filter::Nearest),
        [0, 0, 255, 255]
    );
    // Enlarging interpolates between the two pixel centres.
    assert_eq!(
        resize_gray(&[0, 200], (1, 2), (1, 4), Filter::Bilinear),
        [0, 50, 150, 200]
    );
    // Shrinking 3 → 1 averages.
    assert_eq!(resize_gray(&[0, 30, 90], (1, 3), (1, 1), Filter::Bilinear), [40]);
    let big = vec![9u8; 100 * 80];
    assert_eq!(
        resize_gray(&big, (100, 80), (28, 28), Filter::Bilinear),
        vec![9; 28 * 28]
    );
}

fn stats(epoch: usize, loss: f64, acc: f64, eval: Option<(f64, f64)>) -> EpochStats {
    EpochStats {
        epoch,
        train_loss: loss,
        train_accuracy: acc,
        eval,
        seconds: 1.0,
        images_per_sec: 1.0,
        lr: 1e-3,
        confusion: None,
    }
}

#[test]
fn training_curves_are_a_png_of_the_documented_size() {
    let dir = temp_dir::tempdir().unwrap();
    let history = [
        stats(1, 0.42, 0.87, Some((0.15, 0.953))),
        stats(2, 0.12, 0.962, Some((0.08, 0.975))),
        stats(3, 0.08, 0.975, Some((0.06, 0.981))),
    ];
    let path = dir.path().join("curves.png");
    save_training_curves(&history, &path).unwrap();
    assert_eq!(png_size(&path), (CURVES_WIDTH, CURVES_HEIGHT));
    // One epoch, no evaluation set: still a picture.
    save_training_curves(
        &history[..1]
            .iter()
            .map(|s| EpochStats {
                eval: None,
                ..s.clone()
            })
            .collect::<Vec<_>>(),
        &path,
    )
    .unwrap();
    assert!(matches!(
        save_training_curves(&[], &path),
        Err(VizError::Empty(_))
    ));
}

#[test]
fn feature_maps_one_file_per_conv_layer() {
    let model = ferrocnn::zoo::mnist_default((1, 28, 28), 10, 0);
    let dir = temp_dir::tempdir().unwrap();
    let input = Array4::from_shape_fn((1, 1, 28, 28), |(_, _, y, x)| ((x + y) % 7) as f32 / 7.0);
    let written = save_feature_maps(&model, &input, dir.path()).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["features_conv1.png", "features_conv2.png"]);
    // conv1: 32 maps of 28×28 (same padding), 8 per row, enlarged 2×, 1 px borders.
    assert_eq!(
        png_size(&written[0]),
        Grid::new(8).with_scale(2).size(32, (28, 28))
    );
    let two = Array4::<f32>::zeros((2, 1, 28, 28));
    assert!(matches!(
        save_feature_maps(&model, &two, dir.path()),
        Err(VizError::Shape(_))
    ));
    let rgb = Array4::<f32>::zeros((1, 3, 28, 28));
    assert!(matches!(
        save_feature_maps(&model, &rgb, dir.path()),
        Err(VizError::Shape(_))
    ));
}

#[test]
fn conv_filters_layout_first_and_deeper_layers() {
    let model = ferrocnn::zoo::r1((1, 28, 28), 10, 0);
    let convs: Vec<_> = model
        .named_modules()
        .into_iter()
        .filter_map(|(_, m)| ferrocnn::nn::conv_of(m))
        .collect();
    let dir = temp_dir::tempdir().unwrap();
    let first = dir.path().join("f1.png");
    save_conv_filters(convs[0], &first, 4).unwrap();
    // 32 kernels 1×3×3 → 8 × 4 tiles.
    assert_eq!(png_size(&first), Grid::new(8).with_scale(4).size(32, (3, 3)));
    let second = dir.path().join("f2.png");
    save_conv_filters(convs[1], &second, 2).unwrap();
    // 64 filters × 32 input channels: 64 rows of 32 tiles.
    assert_eq!(
        png_size(&second),
        Grid::new(32).with_scale(2).size(64 * 32, (3, 3))
    );
}

#[test]
fn image_grid_checks_image_sizes() {
    let dir = temp_dir::tempdir().unwrap();
    let path = dir.path().join("grid.png");
    let a = vec![0u8; 16];
    save_image_grid(&[(&a, "7→1"), (&a, "2→3")], (4, 4), 8, 10, &path).unwrap();
    let (w, h) = png_size(&path);
    assert_eq!(w, Grid::new(8).with_scale(10).size(2, (4, 4)).0);
    assert!(h > 4 * 10 + 2, "a caption strip under the row");
    let short = vec![0u8; 15];
    assert!(matches!(
        save_image_grid(&[(&short, "1")], (4, 4), 8, 1, &path),
        Err(VizError::Shape(_))
    ));
}

#[test]
fn a_png_whose_header_claims_a_huge_image_is_refused_before_allocating() {
    // 69 bytes: the signature, an IHDR of 1,000,000 × 1,000,000 gray pixels, a
    // scrap of IDAT and IEND, each chunk with its right CRC.
    let png = common::png::gray_png_claiming(1_000_000, 1_000_000, &[0x78, 0x9c, 0x03, 0x00]);
    let dir = temp_dir::tempdir().unwrap();
    let path = dir.path().join("huge.png");
    std::fs::write(&path, &png).unwrap();
    let err = read_grayscale_png(&path).expect_err("too large");
    assert!(
        matches!(err, VizError::Unsupported { .. }) && err.to_string().contains("1000000×1000000"),
        "{err}"
    );
}
