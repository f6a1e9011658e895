//! PNG output: sample grids and loss curves, each written atomically.
//!
//! - [`write_grid`] tiles images like torchvision's `make_grid`: `nrow` images per row, 2
//!   pixels of black padding around and between them, values mapped from `range` to 0..255
//!   (`⌊255·(v − lo)/(hi − lo) + 0.5⌋`, clamped; NaN becomes 0); 1 channel gives a grayscale
//!   PNG, 3 an RGB one.
//! - [`write_png_dir`] writes each image as its own PNG (no padding), for tools that read
//!   folders of images.
//! - [`write_loss_plot`] draws line plots with `image`'s pixel buffers only: axes, grid lines,
//!   tick labels and a legend in a built-in 3×5 pixel font drawn at twice its size.
//! - [`write_atomic`] writes to a temporary file in the same folder, syncs it and renames it
//!   over the target, so a reader (or a crash) never sees half a file.

use std::fs::{self, File};
use std::io::{Cursor, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use image::{DynamicImage, GrayImage, ImageFormat, Rgb, RgbImage};

use crate::data::DataError;

/// Padding between and around the tiles of a grid, in pixels.
pub const GRID_PADDING: usize = 2;

/// Largest grid or plot accepted, in pixels (about 16k × 16k).
const MAX_PIXELS: usize = 1 << 28;

fn grid_err(reason: String) -> DataError {
    DataError::Grid { reason }
}

/// Tiles `n` images of `shape = [n, c, h, w]` (N×C×H×W f32) into one image.
pub fn make_grid(
    images: &[f32],
    shape: [usize; 4],
    nrow: usize,
    range: (f32, f32),
) -> Result<DynamicImage, DataError> {
    tile(images, shape, nrow, range, GRID_PADDING)
}

/// [`make_grid`] with `p` pixels of padding.
fn tile(
    images: &[f32],
    shape: [usize; 4],
    nrow: usize,
    range: (f32, f32),
    p: usize,
) -> Result<DynamicImage, DataError> {
    let [n, c, h, w] = shape;
    let (lo, hi) = range;
    if n == 0 || h == 0 || w == 0 {
        return Err(grid_err(format!("no pixels to draw (shape {shape:?})")));
    }
    if c != 1 && c != 3 {
        return Err(grid_err(format!("images need 1 or 3 channels to be drawn, these have {c}")));
    }
    if nrow == 0 {
        return Err(grid_err("a grid needs at least 1 image per row".to_string()));
    }
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(grid_err(format!("the value range [{lo}, {hi}] must be finite with lo < hi")));
    }
    let expected = n.checked_mul(c * h).and_then(|v| v.checked_mul(w));
    if expected != Some(images.len()) {
        return Err(grid_err(format!("{} values do not make images of shape {shape:?}", images.len())));
    }
    let cols = nrow.min(n);
    let rows = n.div_ceil(cols);
    let (cell_h, cell_w) = (h + p, w + p);
    let width = cols.checked_mul(cell_w).and_then(|v| v.checked_add(p));
    let height = rows.checked_mul(cell_h).and_then(|v| v.checked_add(p));
    let (Some(width), Some(height)) = (width, height) else {
        return Err(grid_err("the grid is too large".to_string()));
    };
    if width.saturating_mul(height) > MAX_PIXELS {
        return Err(grid_err(format!("a {width}×{height} grid is too large")));
    }
    let scale = 255.0 / (hi - lo);
    let byte = |v: f32| ((v - lo) * scale + 0.5).clamp(0.0, 255.0) as u8;
    let mut buf = vec![0u8; width * height * c];
    for (k, image) in images.chunks_exact(c * h * w).enumerate() {
        let (y0, x0) = ((k / cols) * cell_h + p, (k % cols) * cell_w + p);
        for ch in 0..c {
            let plane = &image[ch * h * w..(ch + 1) * h * w];
            for (i, row) in plane.chunks_exact(w).enumerate() {
                let base = ((y0 + i) * width + x0) * c + ch;
                for (j, &v) in row.iter().enumerate() {
                    buf[base + j * c] = byte(v);
                }
            }
        }
    }
    let (w32, h32) = (dim(width)?, dim(height)?);
    let img = if c == 1 {
        GrayImage::from_raw(w32, h32, buf).map(DynamicImage::ImageLuma8)
    } else {
        RgbImage::from_raw(w32, h32, buf).map(DynamicImage::ImageRgb8)
    };
    img.ok_or_else(|| grid_err("internal: the grid buffer has the wrong size".to_string()))
}

fn dim(v: usize) -> Result<u32, DataError> {
    u32::try_from(v).map_err(|_| grid_err(format!("{v} pixels is too large")))
}

/// Writes a grid of images as a PNG (see [`make_grid`]), atomically.
pub fn write_grid(
    path: &Path,
    images: &[f32],
    shape: [usize; 4],
    nrow: usize,
    range: (f32, f32),
) -> Result<(), DataError> {
    let grid = make_grid(images, shape, nrow, range)?;
    write_png(path, &grid)
}

/// Writes each image of `shape = [n, c, h, w]` as its own PNG, `000000.png`, `000001.png`, ..
/// in the folder `dir` (created if missing), each file atomically; values mapped from `range`
/// as in a grid.
pub fn write_png_dir(
    dir: &Path,
    images: &[f32],
    shape: [usize; 4],
    range: (f32, f32),
) -> Result<(), DataError> {
    let [n, c, h, w] = shape;
    let per_image = c * h * w;
    if per_image == 0 || n.checked_mul(per_image) != Some(images.len()) {
        return Err(grid_err(format!("{} values do not make images of shape {shape:?}", images.len())));
    }
    fs::create_dir_all(dir)
        .map_err(|e| DataError::Write { path: dir.to_path_buf(), reason: e.to_string() })?;
    for (k, image) in images.chunks_exact(per_image).enumerate() {
        let img = tile(image, [1, c, h, w], 1, range, 0)?;
        write_png(&dir.join(format!("{k:06}.png")), &img)?;
    }
    Ok(())
}

/// Encodes `img` as PNG and writes it atomically.
pub fn write_png(path: &Path, img: &DynamicImage) -> Result<(), DataError> {
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .map_err(|e| DataError::Write { path: path.to_path_buf(), reason: e.to_string() })?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` through a temporary file in the same folder: write, fsync,
/// rename over `path`, then fsync the folder (where the platform allows). On failure the
/// temporary file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let err = |e: std::io::Error| DataError::Write { path: path.to_path_buf(), reason: e.to_string() };
    let Some(name) = path.file_name() else {
        return Err(DataError::Write { path: path.to_path_buf(), reason: "it names no file".to_string() });
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(dir) {
            // Not every platform can sync a folder; the rename has happened either way.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// How to draw a loss plot.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotOptions {
    pub width: u32,
    pub height: u32,
    /// A logarithmic y axis (values ≤ 0 are then skipped).
    pub log_y: bool,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions { width: 800, height: 500, log_y: false }
    }
}

/// Writes an 800×500 line plot of `(step, value)` series as a PNG, atomically. Non-finite
/// values are skipped.
pub fn write_loss_plot(path: &Path, series: &[(String, Vec<(u64, f64)>)]) -> Result<(), DataError> {
    write_loss_plot_with(path, series, &PlotOptions::default())
}

/// [`write_loss_plot`] with a size and axis scale.
pub fn write_loss_plot_with(
    path: &Path,
    series: &[(String, Vec<(u64, f64)>)],
    options: &PlotOptions,
) -> Result<(), DataError> {
    let img = render_loss_plot(series, options)?;
    write_png(path, &DynamicImage::ImageRgb8(img))
}

/// One colour per series (matplotlib's `tab10`), reused cyclically.
const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
const GRID_GRAY: Rgb<u8> = Rgb([225, 225, 225]);
const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const MARGIN_LEFT: i64 = 70;
const MARGIN_RIGHT: i64 = 20;
const MARGIN_TOP: i64 = 20;
const MARGIN_BOTTOM: i64 = 45;

/// Draws the plot of [`write_loss_plot_with`] in memory.
pub fn render_loss_plot(
    series: &[(String, Vec<(u64, f64)>)],
    options: &PlotOptions,
) -> Result<RgbImage, DataError> {
    let (width, height) = (i64::from(options.width), i64::from(options.height));
    if width < MARGIN_LEFT + MARGIN_RIGHT + 40 || height < MARGIN_TOP + MARGIN_BOTTOM + 40 {
        return Err(grid_err(format!("a {width}×{height} plot is too small (at least 130×105)")));
    }
    if (width as usize).saturating_mul(height as usize) > MAX_PIXELS {
        return Err(grid_err(format!("a {width}×{height} plot is too large")));
    }
    let ty = |v: f64| if options.log_y { if v > 0.0 { Some(v.log10()) } else { None } } else { Some(v) };
    // The points to draw, per series, with the y transform applied.
    let points: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|(_, s)| {
            s.iter()
                .filter(|(_, v)| v.is_finite())
                .filter_map(|&(x, v)| ty(v).filter(|t| t.is_finite()).map(|t| (x as f64, t)))
                .collect()
        })
        .collect();
    let all = points.iter().flatten();
    let (mut x0, mut x1, mut y0, mut y1) =
        (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in all {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        let pad = if y0 == 0.0 { 1.0 } else { y0.abs() * 0.1 };
        (y0, y1) = (y0 - pad, y1 + pad);
    } else {
        let pad = (y1 - y0) * 0.05;
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    let mut img = RgbImage::from_pixel(options.width, options.height, WHITE);
    let (left, right, top, bottom) = (MARGIN_LEFT, width - MARGIN_RIGHT, MARGIN_TOP, height - MARGIN_BOTTOM);
    let px = |x: f64| left as f64 + (x - x0) / (x1 - x0) * (right - left) as f64;
    let py = |y: f64| bottom as f64 - (y - y0) / (y1 - y0) * (bottom - top) as f64;

    // Grid lines and tick labels.
    // On a log axis spanning a decade or more, ticks fall on whole decades.
    let min_step = if options.log_y && y1 - y0 >= 1.0 { 1.0 } else { 0.0 };
    let (ystep, yticks) = ticks(y0, y1, 6, min_step);
    for &t in &yticks {
        let y = py(t).round() as i64;
        hline(&mut img, left, right, y, GRID_GRAY);
        hline(&mut img, left - 4, left, y, BLACK);
        let label = if options.log_y { fmt_significant(10f64.powf(t)) } else { fmt_number(t, ystep) };
        let tw = text_width(&label);
        text(&mut img, left - 7 - tw, y - 5, &label, BLACK);
    }
    let (xstep, xticks) = ticks(x0, x1, 7, 1.0);
    for &t in &xticks {
        let x = px(t).round() as i64;
        vline(&mut img, x, top, bottom, GRID_GRAY);
        vline(&mut img, x, bottom, bottom + 4, BLACK);
        let label = fmt_number(t, xstep.max(1.0));
        text(&mut img, x - text_width(&label) / 2, bottom + 8, &label, BLACK);
    }
    hline(&mut img, left, right, bottom, BLACK);
    vline(&mut img, left, top, bottom, BLACK);
    let xlabel = "STEP";
    text(&mut img, (left + right - text_width(xlabel)) / 2, bottom + 26, xlabel, BLACK);
    if options.log_y {
        text(&mut img, 4, top - 16, "LOG", BLACK);
    }

    // The series, clipped to the plot area.
    let clip = (left, right, top, bottom);
    for (k, pts) in points.iter().enumerate() {
        let colour = Rgb(PALETTE[k % PALETTE.len()]);
        let mut prev: Option<(i64, i64)> = None;
        for &(x, y) in pts {
            let p = (px(x).round() as i64, py(y).round() as i64);
            match prev {
                Some(q) => line(&mut img, q, p, colour, clip),
                None => line(&mut img, p, p, colour, clip),
            }
            prev = Some(p);
        }
    }

    // The legend: a swatch and the name of each series, top right.
    let names: Vec<&str> = series.iter().map(|(n, _)| n.as_str()).collect();
    if !names.is_empty() {
        let text_w = names.iter().map(|n| text_width(n)).max().unwrap_or(0);
        let (box_w, box_h) = (text_w + 30, 14 * names.len() as i64 + 6);
        let (bx, by) = (right - box_w - 6, top + 6);
        fill(&mut img, bx, by, box_w, box_h, WHITE);
        rect(&mut img, bx, by, box_w, box_h, GRID_GRAY);
        for (k, name) in names.iter().enumerate() {
            let colour = Rgb(PALETTE[k % PALETTE.len()]);
            let y = by + 5 + 14 * k as i64;
            fill(&mut img, bx + 5, y + 3, 14, 4, colour);
            text(&mut img, bx + 24, y, name, BLACK);
        }
    }
    Ok(img)
}

/// About `target` "nice" ticks (1, 2 or 5 times a power of ten, at least `min_step` apart)
/// covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64, target: usize, min_step: f64) -> (f64, Vec<f64>) {
    let raw = ((hi - lo) / target as f64).max(min_step);
    if !(raw.is_finite() && raw > 0.0) {
        return (1.0, vec![lo]);
    }
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    let out = (first..=last).take(50).map(|i| i as f64 * step).collect();
    (step, out)
}

/// A tick label: plain decimals fitting the step, or scientific notation far from 1.
fn fmt_number(v: f64, step: f64) -> String {
    if v == 0.0 || v.abs() < step * 1e-6 {
        return "0".to_string();
    }
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        let s = format!("{v:.1e}");
        return s.replace(".0e", "e");
    }
    let decimals = (-step.log10().floor()).clamp(0.0, 6.0) as usize;
    format!("{v:.decimals$}")
}

/// Three significant digits, trailing zeros dropped (labels of a log axis).
fn fmt_significant(v: f64) -> String {
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.1e}").replace(".0e", "e");
    }
    let decimals = (2.0 - a.log10().floor()).clamp(0.0, 6.0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && x < i64::from(img.width()) && y < i64::from(img.height()) {
        img.put_pixel(x as u32, y as u32, c);
    }
}

fn hline(img: &mut RgbImage, x0: i64, x1: i64, y: i64, c: Rgb<u8>) {
    (x0..=x1).for_each(|x| put(img, x, y, c));
}

fn vline(img: &mut RgbImage, x: i64, y0: i64, y1: i64, c: Rgb<u8>) {
    (y0..=y1).for_each(|y| put(img, x, y, c));
}

fn fill(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, c: Rgb<u8>) {
    for j in y..y + h {
        hline(img, x, x + w - 1, j, c);
    }
}

fn rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, c: Rgb<u8>) {
    hline(img, x, x + w - 1, y, c);
    hline(img, x, x + w - 1, y + h - 1, c);
    vline(img, x, y, y + h - 1, c);
    vline(img, x + w - 1, y, y + h - 1, c);
}

/// A 2-pixel-thick Bresenham line, drawn only inside `clip = (left, right, top, bottom)`.
fn line(
    img: &mut RgbImage,
    (mut x, mut y): (i64, i64),
    (x1, y1): (i64, i64),
    c: Rgb<u8>,
    clip: (i64, i64, i64, i64),
) {
    let (left, right, top, bottom) = clip;
    let (dx, dy) = ((x1 - x).abs(), -(y1 - y).abs());
    let (sx, sy) = (if x < x1 { 1 } else { -1 }, if y < y1 { 1 } else { -1 });
    let mut err = dx + dy;
    // Far outside points (a huge jump) are bounded by the picture: at most width + height steps.
    for _ in 0..=(dx - dy).min(1 << 16) {
        for (ox, oy) in [(0, 0), (0, 1)] {
            let (px, py) = (x + ox, y + oy);
            if px >= left && px <= right && py >= top && py < bottom {
                put(img, px, py, c);
            }
        }
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// The built-in font: 3 columns × 5 rows per glyph, row-major bits, upper case only.
fn glyph(ch: char) -> [u8; 5] {
    let rows: &str = match ch.to_ascii_uppercase() {
        '0' => "111101101101111",
        '1' => "010110010010111",
        '2' => "111001111100111",
        '3' => "111001111001111",
        '4' => "101101111001001",
        '5' => "111100111001111",
        '6' => "111100111101111",
        '7' => "111001001001001",
        '8' => "111101111101111",
        '9' => "111101111001111",
        '.' => "000000000000010",
        ',' => "000000000010100",
        '-' => "000000111000000",
        '+' => "000010111010000",
        '_' => "000000000000111",
        ':' => "000010000010000",
        '/' => "001001010100100",
        '(' => "010100100100010",
        ')' => "010001001001010",
        '[' => "110100100100110",
        ']' => "011001001001011",
        '=' => "000111000111000",
        '*' => "000101010101000",
        ' ' => "000000000000000",
        'A' => "010101111101101",
        'B' => "110101110101110",
        'C' => "011100100100011",
        'D' => "110101101101110",
        'E' => "111100110100111",
        'F' => "111100110100100",
        'G' => "011100101101011",
        'H' => "101101111101101",
        'I' => "111010010010111",
        'J' => "001001001101010",
        'K' => "101101110101101",
        'L' => "100100100100111",
        'M' => "101111111101101",
        'N' => "110101101101101",
        'O' => "010101101101010",
        'P' => "110101110100100",
        'Q' => "010101101110011",
        'R' => "110101110101101",
        'S' => "011100010001110",
        'T' => "111010010010010",
        'U' => "101101101101111",
        'V' => "101101101101010",
        'W' => "101101111111101",
        'X' => "101101010101101",
        'Y' => "101101010010010",
        'Z' => "111001010100111",
        _ => "111001010000010",
    };
    let mut out = [0u8; 5];
    for (i, bit) in rows.bytes().enumerate() {
        if bit == b'1' {
            out[i / 3] |= 1 << (2 - i % 3);
        }
    }
    out
}

/// Glyphs are drawn at 2× (6×10 pixels) with 2 pixels between them.
const GLYPH_SCALE: i64 = 2;
const ADVANCE: i64 = 4 * GLYPH_SCALE;

fn text_width(s: &str) -> i64 {
    let n = s.chars().count() as i64;
    if n == 0 { 0 } else { n * ADVANCE - GLYPH_SCALE }
}

fn text(img: &mut RgbImage, x: i64, y: i64, s: &str, c: Rgb<u8>) {
    for (k, ch) in s.chars().enumerate() {
        let gx = x + k as i64 * ADVANCE;
        for (row, bits) in glyph(ch).iter().enumerate() {
            for col in 0..3 {
                if bits & (1 << (2 - col)) != 0 {
                    let (px, py) = (gx + col * GLYPH_SCALE, y + row as i64 * GLYPH_SCALE);
                    fill(img, px, py, GLYPH_SCALE, GLYPH_SCALE, c);
                }
            }
        }
    }
}
