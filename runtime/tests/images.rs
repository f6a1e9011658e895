//! PNG output: grids of known images (size and pixels at known places), loss plots (valid
//! PNGs of the right size) and atomic writes (no temporary file left behind).

use std::path::{Path, PathBuf};

use genc_runtime::data::DataError;
use genc_runtime::images::{
    PlotOptions, make_grid, write_atomic, write_grid, write_loss_plot, write_loss_plot_with,
};
use image::GenericImageView;
use miette::Diagnostic;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("genc-images-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch folder");
    dir
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn code(e: &DataError) -> String {
    e.code().map(|c| c.to_string()).unwrap_or_default()
}

#[test]
fn a_gray_grid_has_padding_and_mapped_values() {
    let dir = scratch("gray");
    // Three 2×3 images in [-1, 1]: image k is filled with -1 + k, one pixel marked with 1.
    let (n, h, w) = (3, 2, 3);
    let mut data: Vec<f32> = (0..n).flat_map(|k| vec![-1.0 + k as f32; h * w]).collect();
    data[w + 2] = 1.0; // image 0, row 1, col 2
    let path = dir.join("grid.png");
    write_grid(&path, &data, [n, 1, h, w], 2, (-1.0, 1.0)).expect("write");
    let img = image::open(&path).expect("a PNG");
    assert!(matches!(img, image::DynamicImage::ImageLuma8(_)));
    let g = img.to_luma8();
    // 2 per row, 2 rows: width 2·(3+2)+2 = 12, height 2·(2+2)+2 = 10.
    assert_eq!(g.dimensions(), (12, 10));
    let at = |x: u32, y: u32| g.get_pixel(x, y).0[0];
    assert_eq!((at(0, 0), at(1, 1), at(5, 2), at(11, 9)), (0, 0, 0, 0), "padding");
    assert_eq!(at(2, 2), 0, "image 0 is -1");
    assert_eq!(at(4, 3), 255, "image 0's marked pixel");
    assert_eq!(at(7, 2), 128, "image 1 is 0 → 127.5 + 0.5");
    assert_eq!(at(2, 6), 255, "image 2 is 1");
    assert_eq!(at(7, 6), 0, "the empty cell");
    assert_eq!(files(&dir), vec!["grid.png"], "no temporary file left");
}

#[test]
fn an_rgb_grid_keeps_channels_apart_and_clamps() {
    // One 1×2 RGB image: pixel 0 red, pixel 1 with out-of-range and NaN values.
    let data = [1.0, 2.0, /* G */ 0.0, -5.0, /* B */ 0.0, f32::NAN];
    let img = make_grid(&data, [1, 3, 1, 2], 8, (0.0, 1.0)).expect("grid");
    let rgb = img.to_rgb8();
    assert_eq!(rgb.dimensions(), (6, 5));
    assert_eq!(rgb.get_pixel(2, 2).0, [255, 0, 0]);
    assert_eq!(rgb.get_pixel(3, 2).0, [255, 0, 0]);
    assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0, 255]);
}

#[test]
fn bad_grids_are_errors() {
    type Case = (Vec<f32>, [usize; 4], usize, (f32, f32));
    let cases: Vec<Case> = vec![
        (vec![0.0; 5], [1, 1, 2, 2], 1, (0.0, 1.0)),
        (vec![0.0; 8], [1, 2, 2, 2], 1, (0.0, 1.0)),
        (vec![], [0, 1, 2, 2], 1, (0.0, 1.0)),
        (vec![0.0; 4], [1, 1, 2, 2], 0, (0.0, 1.0)),
        (vec![0.0; 4], [1, 1, 2, 2], 1, (1.0, 1.0)),
        (vec![0.0; 4], [1, 1, 2, 2], 1, (0.0, f32::INFINITY)),
        (vec![0.0; 4], [usize::MAX, 1, 2, 2], 1, (0.0, 1.0)),
    ];
    for (data, shape, nrow, range) in cases {
        let err = make_grid(&data, shape, nrow, range).expect_err("a bad grid");
        assert_eq!(code(&err), "E0919", "{shape:?}: {err}");
    }
    let dir = scratch("bad-dir");
    let err = write_grid(&dir.join("no/such/folder/g.png"), &[0.0; 4], [1, 1, 2, 2], 1, (0.0, 1.0))
        .expect_err("no folder");
    assert_eq!(code(&err), "E0918");
    assert!(files(&dir).is_empty());
}

#[test]
fn a_loss_plot_is_a_png_of_the_right_size() {
    let dir = scratch("plot");
    let falling: Vec<(u64, f64)> = (0..500).map(|s| (s, 2.0 / (1.0 + s as f64 / 50.0))).collect();
    let mut noisy: Vec<(u64, f64)> = (0..500).map(|s| (s, 0.5 + ((s * 37 % 17) as f64) / 40.0)).collect();
    noisy[10].1 = f64::NAN;
    noisy[20].1 = f64::INFINITY;
    let series = vec![("loss_d".to_string(), falling), ("loss_g".to_string(), noisy)];
    let path = dir.join("loss.png");
    write_loss_plot(&path, &series).expect("plot");
    let img = image::open(&path).expect("a PNG").to_rgb8();
    assert_eq!(img.dimensions(), (800, 500));
    // Both series' colours are drawn somewhere.
    for colour in [[31, 119, 180], [255, 127, 14]] {
        assert!(img.pixels().any(|p| p.0 == colour), "{colour:?} missing");
    }
    // Log scale, another size, a rewrite of the same file.
    let options = PlotOptions { width: 400, height: 300, log_y: true };
    write_loss_plot_with(&path, &series, &options).expect("log plot");
    assert_eq!(image::open(&path).expect("a PNG").dimensions(), (400, 300));
    // No data (or nothing finite) still gives a plot.
    write_loss_plot(&dir.join("empty.png"), &[]).expect("empty");
    write_loss_plot(&dir.join("nan.png"), &[("x".to_string(), vec![(0, f64::NAN)])]).expect("nan");
    write_loss_plot(&dir.join("one.png"), &[("x".to_string(), vec![(5, 1.0)])]).expect("one point");
    assert_eq!(files(&dir), vec!["empty.png", "loss.png", "nan.png", "one.png"]);
    let tiny = PlotOptions { width: 10, height: 10, log_y: false };
    let err = write_loss_plot_with(&dir.join("tiny.png"), &series, &tiny).expect_err("too small");
    assert_eq!(code(&err), "E0919");
}

#[test]
fn atomic_writes_replace_the_file_and_leave_nothing_else() {
    let dir = scratch("atomic");
    let path = dir.join("out.bin");
    write_atomic(&path, b"first").expect("write");
    write_atomic(&path, b"second").expect("overwrite");
    assert_eq!(std::fs::read(&path).expect("read"), b"second");
    assert_eq!(files(&dir), vec!["out.bin"]);
    // A target that is a folder: the rename fails, the temporary file is removed.
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    std::fs::write(dir.join("sub/keep"), b"x").expect("write");
    let err = write_atomic(&dir.join("sub"), b"data").expect_err("a folder");
    assert_eq!(code(&err), "E0918");
    assert_eq!(files(&dir), vec!["out.bin", "sub"]);
}
