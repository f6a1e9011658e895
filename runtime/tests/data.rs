//! Data sets and batches: IDX parsing on real Fashion-MNIST (the Debian package
//! `dataset-fashion-mnist` must be installed), corrupt files, image folders, transforms on
//! small known arrays, and the batcher's determinism, coverage, resumption and prefetching.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use genc_runtime::data::{
    Batch, Batcher, BatcherState, Binarize, DataError, Dataset, EdgeFilter, FolderOptions, Images, Pair,
    Split, Transforms, find_fashion_mnist, in_order, make_batch, rng::SplitMix64, transform,
};
use miette::Diagnostic;

fn code(e: &DataError) -> String {
    e.code().map(|c| c.to_string()).unwrap_or_default()
}

/// A fresh, empty folder under the system's temporary folder.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("genc-data-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch folder");
    dir
}

fn fashion_dir() -> PathBuf {
    find_fashion_mnist().unwrap_or_else(|looked| {
        panic!("Fashion-MNIST not found in {looked:?}: `apt-get install dataset-fashion-mnist`")
    })
}

/// An IDX file's bytes: magic, dims, data.
fn idx_bytes(type_code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, type_code, dims.len() as u8];
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write a test file");
}

/// A small labelled data set: image `i` is filled with `i / 100`, label `i % 10`.
fn small(n: usize, shape: (usize, usize, usize)) -> Dataset {
    let size = shape.0 * shape.1 * shape.2;
    let images = (0..n).flat_map(|i| std::iter::repeat_n(i as f32 / 100.0, size)).collect();
    Dataset { images, labels: Some((0..n as i32).map(|i| i % 10).collect()), shape, split: Split::Train }
}

// --- Fashion-MNIST -------------------------------------------------------------------------

#[test]
fn fashion_mnist_test_split() {
    let ds = Dataset::fashion_mnist(Split::Test, None).expect("load the test split");
    assert_eq!(ds.len(), 10_000);
    assert_eq!(ds.shape, (1, 28, 28));
    assert_eq!(ds.split, Split::Test);
    let labels = ds.labels.as_ref().expect("labels");
    assert_eq!(&labels[..10], &[9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
    let mut counts = [0usize; 10];
    for &l in labels {
        counts[l as usize] += 1;
    }
    assert_eq!(counts, [1000; 10]);
    // The first image: its byte sum is 33456 and its largest pixel 255.
    let first = ds.image(0);
    let sum: f32 = first.iter().map(|v| v * 255.0).sum();
    assert!((sum - 33456.0).abs() < 0.5, "{sum}");
    assert_eq!(first.iter().cloned().fold(0.0, f32::max), 1.0);
    assert!(ds.images.iter().all(|v| (0.0..=1.0).contains(v)));
    let limited = ds.limit(300);
    assert_eq!(limited.len(), 300);
    assert_eq!(limited.labels.map(|l| l.len()), Some(300));
}

#[test]
fn fashion_mnist_train_split_from_an_explicit_folder() {
    let ds = Dataset::fashion_mnist(Split::Train, Some(&fashion_dir())).expect("load the training split");
    assert_eq!(ds.len(), 60_000);
    assert_eq!(&ds.labels.as_ref().expect("labels")[..10], &[9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
}

#[test]
fn missing_fashion_mnist_says_how_to_install_it() {
    let dir = scratch("missing");
    let err = Dataset::fashion_mnist(Split::Train, Some(&dir)).expect_err("an empty folder");
    assert_eq!(code(&err), "E0910");
    let help = err.help().map(|h| h.to_string()).unwrap_or_default();
    assert!(help.contains("apt-get install dataset-fashion-mnist"), "{help}");
}

#[test]
fn an_idx_pair_by_path_raw_or_gzipped() {
    let dir = scratch("pair");
    let pixels: Vec<u8> = (0..2 * 2 * 3).map(|i| (i * 20) as u8).collect();
    let images = idx_bytes(0x08, &[2, 2, 3], &pixels);
    let labels = idx_bytes(0x08, &[2], &[7, 3]);
    write(&dir.join("img"), &images);
    write(&dir.join("lab.gz"), &gzip(&labels));
    let ds = Dataset::from_idx(&dir.join("img"), Some(&dir.join("lab.gz")), Split::Test).expect("load");
    assert_eq!(ds.shape, (1, 2, 3));
    assert_eq!(ds.labels, Some(vec![7, 3]));
    assert_eq!(ds.image(1)[0], 120.0 / 255.0);
    // The same through a folder with raw names (no `.gz`).
    write(&dir.join("t10k-images-idx3-ubyte"), &images);
    write(&dir.join("t10k-labels-idx1-ubyte"), &labels);
    let ds2 = Dataset::fashion_mnist(Split::Test, Some(&dir)).expect("load raw names");
    assert_eq!(ds2, ds);
    // Images without labels; 4-D images are N×C×H×W; i32 labels.
    let four = idx_bytes(0x08, &[1, 3, 2, 2], &pixels);
    write(&dir.join("four"), &four);
    let ds = Dataset::from_idx(&dir.join("four"), None, Split::Train).expect("load 4-D");
    assert_eq!((ds.shape, ds.len(), ds.labels), ((3, 2, 2), 1, None));
    let wide = idx_bytes(0x0C, &[2], &[0, 0, 1, 0, 0, 0, 0, 5]);
    write(&dir.join("wide"), &wide);
    let ds = Dataset::from_idx(&dir.join("img"), Some(&dir.join("wide")), Split::Test).expect("i32 labels");
    assert_eq!(ds.labels, Some(vec![256, 5]));
}

#[test]
fn corrupt_idx_files_are_errors() {
    let dir = scratch("corrupt");
    let pixels = [0u8; 12];
    let good = idx_bytes(0x08, &[2, 2, 3], &pixels);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "E0912"),
        ("short magic", vec![0, 0], "E0912"),
        ("bad magic", idx_bytes(0x08, &[2, 2, 3], &pixels).iter().map(|b| b ^ 0x80).collect(), "E0912"),
        ("unknown type", idx_bytes(0x07, &[2, 2, 3], &pixels), "E0912"),
        ("zero dims", idx_bytes(0x08, &[], &[]), "E0912"),
        ("short header", good[..9].to_vec(), "E0913"),
        ("short data", good[..good.len() - 1].to_vec(), "E0913"),
        ("extra data", [good.clone(), vec![1]].concat(), "E0912"),
        ("huge dims", idx_bytes(0x08, &[u32::MAX, u32::MAX, 4], &pixels), "E0912"),
        ("2-D images", idx_bytes(0x08, &[2, 6], &pixels), "E0912"),
        ("garbage gzip", vec![0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "E0912"),
    ];
    for (name, bytes, want) in cases {
        let path = dir.join("case");
        write(&path, &bytes);
        let err = Dataset::from_idx(&path, None, Split::Train).expect_err(name);
        assert_eq!(code(&err), want, "{name}: {err}");
    }
    // A gzipped file cut in the middle.
    let gz = gzip(&idx_bytes(
        0x08,
        &[50, 28, 28],
        &(0..50 * 784).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>(),
    ));
    write(&dir.join("cut.gz"), &gz[..gz.len() / 2]);
    let err = Dataset::from_idx(&dir.join("cut.gz"), None, Split::Train).expect_err("cut gzip");
    assert!(["E0912", "E0913"].contains(&code(&err).as_str()), "{err}");
    // Labels that do not fit the images.
    write(&dir.join("img"), &good);
    write(&dir.join("lab3"), &idx_bytes(0x08, &[3], &[1, 2, 3]));
    let err = Dataset::from_idx(&dir.join("img"), Some(&dir.join("lab3")), Split::Train).expect_err("count");
    assert_eq!(code(&err), "E0914");
    write(&dir.join("lab2d"), &idx_bytes(0x08, &[2, 1], &[1, 2]));
    let err = Dataset::from_idx(&dir.join("img"), Some(&dir.join("lab2d")), Split::Train).expect_err("2-D");
    assert_eq!(code(&err), "E0912");
    write(
        &dir.join("labf"),
        &idx_bytes(0x0D, &[2], &[&1.5f32.to_be_bytes()[..], &2f32.to_be_bytes()].concat()),
    );
    let err = Dataset::from_idx(&dir.join("img"), Some(&dir.join("labf")), Split::Train).expect_err("1.5");
    assert_eq!(code(&err), "E0912");
    let err = Dataset::from_idx(&dir.join("nonexistent"), None, Split::Train).expect_err("missing");
    assert_eq!(code(&err), "E0911");
}

// --- Image folders -------------------------------------------------------------------------

#[test]
fn a_folder_of_png_images() {
    let dir = scratch("folder");
    // Two gray 4×4 images (a flat 64 and a flat 255) and a file that is not a PNG.
    image::GrayImage::from_pixel(4, 4, image::Luma([64])).save(dir.join("a.png")).expect("save");
    image::GrayImage::from_pixel(8, 8, image::Luma([255])).save(dir.join("b.PNG")).expect("save");
    write(&dir.join("notes.txt"), b"not an image");
    let ds =
        Dataset::from_folder(&dir, &FolderOptions { size: 4, channels: None }, Split::Train).expect("load");
    assert_eq!((ds.len(), ds.shape, ds.labels.clone()), (2, (1, 4, 4), None));
    assert!(ds.image(0).iter().all(|v| (v - 64.0 / 255.0).abs() < 1e-6));
    assert!(ds.image(1).iter().all(|v| (v - 1.0).abs() < 1e-6), "resized to 4×4");
    // As RGB: three equal planes.
    let ds =
        Dataset::from_folder(&dir, &FolderOptions { size: 2, channels: Some(3) }, Split::Train).expect("rgb");
    assert_eq!(ds.shape, (3, 2, 2));
    // One sub-folder per class.
    let classes = scratch("classes");
    for (k, name) in ["cat", "dog"].iter().enumerate() {
        std::fs::create_dir_all(classes.join(name)).expect("mkdir");
        for i in 0..=k {
            let px = image::Rgb([200, 10 * i as u8, 0]);
            image::RgbImage::from_pixel(3, 3, px)
                .save(classes.join(name).join(format!("{i}.png")))
                .expect("save");
        }
    }
    let ds = Dataset::from_folder(&classes, &FolderOptions { size: 3, channels: None }, Split::Test)
        .expect("classes");
    assert_eq!((ds.shape, ds.labels.clone()), ((3, 3, 3), Some(vec![0, 1, 1])));
    // Planes are channel-major: the red plane first.
    assert!((ds.image(0)[0] - 200.0 / 255.0).abs() < 1e-6 && ds.image(0)[9] == 0.0);
    // A broken PNG, an empty folder, a bad channel count.
    write(&dir.join("c.png"), b"\x89PNG\r\n\x1a\nbroken");
    let err = Dataset::from_folder(&dir, &FolderOptions { size: 4, channels: None }, Split::Train)
        .expect_err("broken");
    assert_eq!(code(&err), "E0915");
    let err =
        Dataset::from_folder(&scratch("empty"), &FolderOptions { size: 4, channels: None }, Split::Train)
            .expect_err("empty");
    assert_eq!(code(&err), "E0915");
    let err = Dataset::from_folder(&classes, &FolderOptions { size: 4, channels: Some(2) }, Split::Train)
        .expect_err("channels");
    assert_eq!(code(&err), "E0915");
}

// --- Transforms ----------------------------------------------------------------------------

fn images(data: Vec<f32>, [n, c, h, w]: [usize; 4]) -> Images {
    Images { data, n, c, h, w }
}

#[test]
fn scale_and_binarize() {
    let mut x = images(vec![0.0, 0.25, 0.5, 1.0], [1, 1, 2, 2]);
    transform::scale(&mut x, (-1.0, 1.0));
    assert_eq!(x.data, vec![-1.0, -0.5, 0.0, 1.0]);
    let mut x = images(vec![0.0, 0.5, 0.51, 1.0], [1, 1, 2, 2]);
    transform::binarize_threshold(&mut x);
    assert_eq!(x.data, vec![0.0, 0.0, 1.0, 1.0]);
    // Sampled: 0 and 1 stay, 0.3 is 1 about 30% of the time, the same draws for the same seed.
    let base = images([vec![0.0; 1000], vec![1.0; 1000], vec![0.3; 10_000]].concat(), [1, 1, 120, 100]);
    let mut a = base.clone();
    transform::binarize_sample(&mut a, &mut SplitMix64::new(5));
    let mut b = base.clone();
    transform::binarize_sample(&mut b, &mut SplitMix64::new(5));
    assert_eq!(a, b);
    assert!(a.data[..1000].iter().all(|v| *v == 0.0) && a.data[1000..2000].iter().all(|v| *v == 1.0));
    let mean = a.data[2000..].iter().sum::<f32>() / 10_000.0;
    assert!((mean - 0.3).abs() < 0.02, "{mean}");
    let mut c = base;
    transform::binarize_sample(&mut c, &mut SplitMix64::new(6));
    assert_ne!(a, c);
}

#[test]
fn flips_mirror_whole_images_about_half_the_time() {
    let row: Vec<f32> = vec![1.0, 2.0, 3.0];
    let one = [row.clone(), row.iter().map(|v| v + 10.0).collect()].concat(); // 1 channel, 2×3
    let n = 400;
    let mut x = images(one.iter().cycle().take(n * 6).cloned().collect(), [n, 1, 2, 3]);
    transform::flip_horizontal(&mut x, &mut SplitMix64::new(1));
    let flipped_one = vec![3.0, 2.0, 1.0, 13.0, 12.0, 11.0];
    let mut flipped = 0;
    for image in x.data.chunks(6) {
        if image == flipped_one.as_slice() {
            flipped += 1;
        } else {
            assert_eq!(image, one.as_slice());
        }
    }
    assert!((150..250).contains(&flipped), "{flipped} of {n} flipped");
}

#[test]
fn downsample_averages_blocks() {
    #[rustfmt::skip]
    let x = images(vec![
        1.0, 3.0, 0.0, 0.0,
        5.0, 7.0, 0.0, 4.0,
        1.0, 1.0, 2.0, 2.0,
        1.0, 1.0, 2.0, 2.0,
    ], [1, 1, 4, 4]);
    let y = transform::downsample(&x, 2);
    assert_eq!((y.shape(), y.data), ([1, 1, 2, 2], vec![4.0, 1.0, 1.0, 2.0]));
    // Two channels, two images: every plane on its own.
    let x = images((0..32).map(|i| i as f32).collect(), [2, 2, 2, 4]);
    let y = transform::downsample(&x, 2);
    assert_eq!(y.data, vec![2.5, 4.5, 10.5, 12.5, 18.5, 20.5, 26.5, 28.5]);
}

/// Anti-aliased bicubic downsampling against PyTorch 2.15's
/// `interpolate(x, scale_factor=0.25, mode="bicubic", antialias=True, align_corners=False)` on
/// a 12x8 image `x[i][j] = ((7i + 3j) % 11) / 10` (f64), and by 2 against `size=(6, 4)`.
#[test]
fn bicubic_downsampling_matches_pytorch_antialias() {
    let (h, w) = (12, 8);
    let data = (0..h * w).map(|k| ((7 * (k / w) + 3 * (k % w)) % 11) as f32 / 10.0).collect();
    let x = images(data, [1, 1, h, w]);
    let by4 = [
        5.150914120577e-01,
        5.095408962123e-01,
        4.820405234119e-01,
        5.179594765881e-01,
        4.904591037877e-01,
        4.849085879423e-01,
    ];
    #[rustfmt::skip]
    let by2 = [
        4.789201869715e-01, 5.650635692477e-01, 3.860810003069e-01, 6.029743877033e-01,
        6.125183761167e-01, 4.852447041636e-01, 4.312622053935e-01, 6.137122178963e-01,
        5.474666579498e-01, 3.983439913127e-01, 5.686926882239e-01, 5.134169063808e-01,
        4.865830936192e-01, 4.313073117761e-01, 6.016560086873e-01, 4.525333420502e-01,
        3.862877821037e-01, 5.687377946065e-01, 5.147552958364e-01, 3.874816238833e-01,
        3.970256122967e-01, 6.139189996931e-01, 4.349364307523e-01, 5.210798130285e-01,
    ];
    for (r, want, shape) in [(4, &by4[..], [1, 1, 3, 2]), (2, &by2[..], [1, 1, 6, 4])] {
        let y = genc_runtime::data::downsample_bicubic(&x, r);
        assert_eq!(y.shape(), shape);
        for (a, b) in y.data.iter().zip(want) {
            assert!((f64::from(*a) - b).abs() < 1e-6, "by {r}: {a}, PyTorch {b}");
        }
    }
}

#[test]
fn sobel_finds_a_vertical_edge() {
    // Left half 0, right half 1, 4×4: the edge lies between columns 1 and 2.
    let x = images([0.0, 0.0, 1.0, 1.0].repeat(4), [1, 1, 4, 4]);
    let e = transform::sobel(&x);
    assert_eq!(e.shape(), [1, 1, 4, 4]);
    assert_eq!(e.data, [0.0, 1.0, 1.0, 0.0].repeat(4));
    // RGB is averaged to one plane; a flat image has no edges.
    let flat = images(vec![0.7; 3 * 9], [1, 3, 3, 3]);
    assert_eq!(transform::sobel(&flat).data, vec![0.0; 9]);
}

#[test]
fn transforms_apply_in_a_fixed_order() {
    let x = images([0.0, 0.0, 1.0, 1.0].repeat(4), [1, 1, 4, 4]);
    let t = Transforms { pair: Some(Pair::Downsample(2)), range: Some((-1.0, 1.0)), ..Default::default() };
    let (img, pair) = t.apply(x.clone(), &mut SplitMix64::new(0));
    assert_eq!(img.data, [-1.0, -1.0, 1.0, 1.0].repeat(4));
    assert_eq!(pair.map(|p| p.data), Some(vec![-1.0, 1.0, -1.0, 1.0]));
    let t = Transforms {
        pair: Some(Pair::Edges(EdgeFilter::Sobel)),
        range: Some((-1.0, 1.0)),
        ..Default::default()
    };
    let (_, pair) = t.apply(x, &mut SplitMix64::new(0));
    assert_eq!(pair.map(|p| p.data), Some([-1.0, 1.0, 1.0, -1.0].repeat(4)));
    assert_eq!("sobel".parse::<EdgeFilter>().ok(), Some(EdgeFilter::Sobel));
    assert_eq!("canny".parse::<EdgeFilter>().map_err(|e| code(&e)), Err("E0916".to_string()));
    // Settings are checked against the image size.
    let bad = Transforms { pair: Some(Pair::Downsample(3)), ..Default::default() };
    assert_eq!(bad.check((1, 28, 28)).map_err(|e| code(&e)), Err("E0916".to_string()));
    let bad = Transforms { range: Some((1.0, -1.0)), ..Default::default() };
    assert_eq!(bad.check((1, 28, 28)).map_err(|e| code(&e)), Err("E0916".to_string()));
}

// --- The batcher ---------------------------------------------------------------------------

fn take(batcher: &mut Batcher, n: usize) -> Vec<Batch> {
    (0..n).map(|_| batcher.next_batch().expect("a batch")).collect()
}

fn random_transforms() -> Transforms {
    Transforms { flip: true, binarize: Some(Binarize::Sample), range: Some((-1.0, 1.0)), pair: None }
}

#[test]
fn shuffling_is_deterministic_and_covers_each_epoch() {
    let ds = Arc::new(small(103, (1, 2, 2)));
    let state = BatcherState::start(42, 10, ds.len());
    let mut a = Batcher::synchronous(ds.clone(), Transforms::default(), state).expect("batcher");
    let mut b = Batcher::synchronous(ds.clone(), Transforms::default(), state).expect("batcher");
    assert_eq!(a.batches_per_epoch(), 10);
    let xs = take(&mut a, 30);
    assert_eq!(xs, take(&mut b, 30));
    for epoch in 0..3 {
        let batches = &xs[epoch * 10..(epoch + 1) * 10];
        let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        assert!(batches.iter().all(|b| b.epoch == epoch as u64 && b.images.n == 10));
        assert_eq!(batches.iter().map(|b| b.last_in_epoch).filter(|l| *l).count(), 1);
        assert!(batches[9].last_in_epoch);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 100, "each index at most once per epoch, 100 of 103 used");
        // The images and labels are those of the indices.
        let b = &batches[0];
        assert_eq!(b.images.data[4], b.indices[1] as f32 / 100.0);
        assert_eq!(b.labels.as_ref().map(|l| l[1]), Some(b.indices[1] as i32 % 10));
    }
    assert_ne!(xs[0].indices, xs[10].indices, "a new order each epoch");
    let mut sorted = xs[0].indices.clone();
    sorted.sort_unstable();
    assert_ne!(sorted, xs[0].indices, "shuffled");
    // With every batch full, each index appears exactly once per epoch.
    let ds = Arc::new(small(40, (1, 1, 1)));
    let mut c =
        Batcher::synchronous(ds.clone(), Transforms::default(), BatcherState::start(7, 8, 40)).expect("b");
    let mut seen: Vec<usize> = take(&mut c, 5).iter().flat_map(|b| b.indices.clone()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..40).collect::<Vec<_>>());
    // Another seed, another order.
    let mut d = Batcher::synchronous(ds, Transforms::default(), BatcherState::start(8, 8, 40)).expect("b");
    assert_ne!(
        take(&mut d, 1)[0].indices,
        take(
            &mut Batcher::synchronous(
                Arc::new(small(40, (1, 1, 1))),
                Transforms::default(),
                BatcherState::start(7, 8, 40)
            )
            .expect("b"),
            1
        )[0]
        .indices
    );
}

#[test]
fn a_resumed_batcher_continues_with_the_same_batches() {
    let ds = Arc::new(small(50, (1, 3, 4)));
    let mut full =
        Batcher::new(ds.clone(), random_transforms(), BatcherState::start(3, 8, 50)).expect("batcher");
    let first = take(&mut full, 7);
    let saved = serde_json::to_string(&full.state()).expect("serialise");
    let rest = take(&mut full, 12);
    drop(full);
    let state: BatcherState = serde_json::from_str(&saved).expect("deserialise");
    assert_eq!((state.epoch, state.position), (1, 1), "6 batches per epoch");
    let mut resumed = Batcher::new(ds.clone(), random_transforms(), state).expect("resume");
    assert_eq!(take(&mut resumed, 12), rest);
    assert_eq!(
        first[6],
        make_batch(&ds, &random_transforms(), &BatcherState { epoch: 1, position: 0, ..state })
    );
    // A state that does not fit the data set is refused.
    let other = Arc::new(small(49, (1, 3, 4)));
    let err = Batcher::new(other, random_transforms(), state).err().expect("a different data set");
    assert_eq!(code(&err), "E0916");
    let err = Batcher::new(ds.clone(), Transforms::default(), BatcherState { position: 6, ..state }).err();
    assert_eq!(err.map(|e| code(&e)), Some("E0916".to_string()));
    let err = Batcher::new(ds, Transforms::default(), BatcherState::start(1, 51, 50)).err();
    assert_eq!(err.map(|e| code(&e)), Some("E0916".to_string()));
}

#[test]
fn prefetching_gives_the_synchronous_batches() {
    let ds = Arc::new(small(64, (1, 4, 4)));
    let t = Transforms { pair: Some(Pair::Downsample(2)), ..random_transforms() };
    let state = BatcherState::start(11, 16, 64);
    let mut sync = Batcher::synchronous(ds.clone(), t.clone(), state).expect("sync");
    let mut pre = Batcher::new(ds.clone(), t.clone(), state).expect("prefetch");
    let a = take(&mut sync, 13);
    let b = take(&mut pre, 13);
    assert_eq!(a, b);
    assert_eq!(sync.state(), pre.state());
    assert!(a.iter().all(|x| x.paired.as_ref().map(|p| p.shape()) == Some([16, 1, 2, 2])));
    // Each batch is a pure function of its place.
    for x in &a {
        let s = BatcherState { epoch: x.epoch, position: x.position, ..state };
        assert_eq!(&make_batch(&ds, &t, &s), x);
    }
    // Dropping a prefetching batcher mid-run stops its thread.
    drop(pre);
}

#[test]
fn an_in_order_walk_binarises_each_example_the_same_whatever_the_seed_and_batch() {
    let ds = Dataset::fashion_mnist(Split::Test, None).expect("test split").limit(100);
    let t = Transforms { binarize: Some(Binarize::Sample), ..Default::default() };
    let walk = |seed: u64, batch: usize| -> Vec<f32> {
        in_order(&ds, &t, batch, seed, true).expect("in order").flat_map(|b| b.images.data).collect()
    };
    let first = walk(0, 16);
    assert!(first.iter().all(|&v| v == 0.0 || v == 1.0), "binary values");
    assert!(first.contains(&1.0) && first.contains(&0.0));
    assert_eq!(first, walk(7, 16), "another run's seed");
    assert_eq!(first, walk(0, 30), "another batch size");
}

#[test]
fn batches_of_real_data_in_order() {
    let ds = Dataset::fashion_mnist(Split::Test, None).expect("test split").limit(300);
    let t = Transforms { range: Some((-1.0, 1.0)), ..Default::default() };
    let batches: Vec<Batch> = in_order(&ds, &t, 64, 0, true).expect("in order").collect();
    assert_eq!(batches.iter().map(|b| b.images.n).collect::<Vec<_>>(), vec![64, 64, 64, 64, 44]);
    assert_eq!(batches[0].labels.as_ref().map(|l| l[..3].to_vec()), Some(vec![9, 2, 1]));
    assert!(batches.iter().all(|b| b.images.data.iter().all(|v| (-1.0..=1.0).contains(v))));
    assert_eq!(in_order(&ds, &t, 64, 0, false).expect("full only").count(), 4);
    let ds = Arc::new(ds);
    let mut b = Batcher::new(ds, t, BatcherState::start(1, 64, 300)).expect("batcher");
    assert_eq!(b.next_batch().expect("batch").images.shape(), [64, 1, 28, 28]);
}
