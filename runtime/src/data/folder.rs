//! A folder of PNG images as a data set.
//!
//! Either PNG files directly in the folder (no labels), or one sub-folder per class holding
//! PNG files (labels are the classes' indices in sorted name order, like torchvision's
//! `ImageFolder`). Files are read in sorted name order, so the data set is the same on every
//! machine. Each image is resized to `size`×`size` (triangle filter, aspect ratio not kept)
//! and converted to 1 channel (luma) or 3 (RGB, alpha dropped).

use std::fs;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, ImageReader};

use super::error::DataError;
use super::{Dataset, Split};

/// How to read a folder of images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderOptions {
    /// Every image becomes `size`×`size`.
    pub size: u32,
    /// 1 (grayscale) or 3 (RGB); `None`: from the first image (gray → 1, otherwise 3).
    pub channels: Option<usize>,
}

pub(super) fn load(dir: &Path, options: &FolderOptions, split: Split) -> Result<Dataset, DataError> {
    let folder_err = |reason: String| DataError::ImageFolder { path: dir.to_path_buf(), reason };
    if options.size == 0 {
        return Err(folder_err("the image size must be at least 1".to_string()));
    }
    if let Some(c) = options.channels.filter(|c| *c != 1 && *c != 3) {
        return Err(folder_err(format!("images have 1 or 3 channels, not {c}")));
    }
    let (files, subdirs) = list(dir)?;
    let mut items: Vec<(PathBuf, Option<i32>)> = files.into_iter().map(|f| (f, None)).collect();
    let labelled = items.is_empty() && !subdirs.is_empty();
    if labelled {
        for (class, sub) in subdirs.iter().enumerate() {
            let (files, _) = list(sub)?;
            let class = i32::try_from(class).map_err(|_| folder_err("too many classes".to_string()))?;
            items.extend(files.into_iter().map(|f| (f, Some(class))));
        }
    }
    if items.is_empty() {
        return Err(folder_err("it holds no `.png` files".to_string()));
    }
    let size = options.size;
    let mut channels = options.channels;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (path, label) in items {
        let img = decode(&path)?;
        let c = *channels.get_or_insert(if img.color().has_color() { 3 } else { 1 });
        let img = if img.width() == size && img.height() == size {
            img
        } else {
            img.resize_exact(size, size, FilterType::Triangle)
        };
        if c == 1 {
            images.extend(img.to_luma32f().into_raw());
        } else {
            let rgb = img.to_rgb32f();
            let plane = (size * size) as usize;
            let raw = rgb.as_raw();
            for ch in 0..3 {
                images.extend((0..plane).map(|i| raw[i * 3 + ch]));
            }
        }
        labels.extend(label);
    }
    let c = channels.unwrap_or(1);
    let s = size as usize;
    Ok(Dataset { images, labels: labelled.then_some(labels), shape: (c, s, s), split })
}

/// The `.png` files and the sub-folders of `dir`, each sorted by name.
fn list(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), DataError> {
    let err = |e: std::io::Error| DataError::ImageFolder { path: dir.to_path_buf(), reason: e.to_string() };
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for entry in fs::read_dir(dir).map_err(err)? {
        let path = entry.map_err(err)?.path();
        if path.is_dir() {
            dirs.push(path);
        } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
            files.push(path);
        }
    }
    files.sort();
    dirs.sort();
    Ok((files, dirs))
}

fn decode(path: &Path) -> Result<DynamicImage, DataError> {
    let err = |reason: String| DataError::ImageFolder { path: path.to_path_buf(), reason };
    let reader = ImageReader::open(path).map_err(|e| err(e.to_string()))?;
    let reader = reader.with_guessed_format().map_err(|e| err(e.to_string()))?;
    reader.decode().map_err(|e| err(format!("not a readable PNG image: {e}")))
}
