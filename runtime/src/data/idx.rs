//! IDX files (the MNIST format), raw or gzipped, checked before anything is trusted.
//!
//! Layout: two zero bytes, a type code (`0x08` u8, `0x09` i8, `0x0B` i16, `0x0C` i32,
//! `0x0D` f32, `0x0E` f64), the number of dimensions, each dimension as a big-endian u32, then
//! the values, big-endian, row-major. A gzipped file is recognised by its magic bytes, not
//! its name. The header is read first and the data is then read up to exactly the size it
//! promises, so a short file is [`DataError::Truncated`], a longer one [`DataError::BadIdx`], and
//! a header claiming terabytes allocates nothing before it is found out.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;

use super::error::DataError;

/// At most this many values in one file (2^31, the runtime's tensor limit).
const MAX_VALUES: u64 = 1 << 31;

/// The element type of an IDX file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxType {
    U8,
    I8,
    I16,
    I32,
    F32,
    F64,
}

impl IdxType {
    fn from_code(code: u8) -> Option<IdxType> {
        Some(match code {
            0x08 => IdxType::U8,
            0x09 => IdxType::I8,
            0x0B => IdxType::I16,
            0x0C => IdxType::I32,
            0x0D => IdxType::F32,
            0x0E => IdxType::F64,
            _ => return None,
        })
    }

    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }
}

/// A parsed IDX file: its type, dimensions and raw big-endian data.
#[derive(Clone, Debug)]
pub struct Idx {
    pub dtype: IdxType,
    pub dims: Vec<usize>,
    /// `product(dims) * dtype.size()` bytes, big-endian.
    pub data: Vec<u8>,
}

impl Idx {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Whether the file holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f32. `u8` data is divided by 255 (pixels in [0, 1]); other types keep
    /// their values.
    pub fn to_f32(&self) -> Vec<f32> {
        match self.dtype {
            IdxType::U8 => self.data.iter().map(|&b| f32::from(b) / 255.0).collect(),
            _ => self.values_f64().map(|v| v as f32).collect(),
        }
    }

    /// The values as integers (labels). Floating-point data must hold whole numbers.
    pub fn to_i32(&self) -> Option<Vec<i32>> {
        match self.dtype {
            IdxType::U8 => Some(self.data.iter().map(|&b| i32::from(b)).collect()),
            _ => self
                .values_f64()
                .map(|v| (v.fract() == 0.0 && v.abs() <= f64::from(i32::MAX)).then_some(v as i32))
                .collect(),
        }
    }

    fn values_f64(&self) -> impl Iterator<Item = f64> + '_ {
        let dtype = self.dtype;
        self.data.chunks_exact(dtype.size()).map(move |c| match dtype {
            IdxType::U8 => f64::from(c[0]),
            IdxType::I8 => f64::from(c[0] as i8),
            IdxType::I16 => f64::from(i16::from_be_bytes([c[0], c[1]])),
            IdxType::I32 => f64::from(i32::from_be_bytes([c[0], c[1], c[2], c[3]])),
            IdxType::F32 => f64::from(f32::from_be_bytes([c[0], c[1], c[2], c[3]])),
            IdxType::F64 => f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        })
    }
}

/// Reads and checks an IDX file, gzipped or raw.
pub fn read_idx(path: &Path) -> Result<Idx, DataError> {
    let read_err = |e: std::io::Error| DataError::Read { path: path.to_path_buf(), reason: e.to_string() };
    let mut file = BufReader::new(File::open(path).map_err(read_err)?);
    let mut head = [0u8; 2];
    let got = read_up_to(&mut file, &mut head).map_err(read_err)?;
    let head = &head[..got];
    if head == [0x1f, 0x8b] {
        let mut reader = GzDecoder::new(head.chain(file));
        parse_idx(&mut reader, path)
    } else {
        let mut reader = head.chain(file);
        parse_idx(&mut reader, path)
    }
}

/// Parses IDX data from a reader (already decompressed); `path` names it in errors.
pub fn parse_idx(reader: &mut dyn Read, path: &Path) -> Result<Idx, DataError> {
    let bad = |reason: String| DataError::BadIdx { path: path.to_path_buf(), reason };
    let io = |e: std::io::Error| bad(format!("{e} (a damaged gzip stream?)"));
    let mut magic = [0u8; 4];
    let got = read_up_to(reader, &mut magic).map_err(io)?;
    if got < 4 {
        return Err(bad(format!("the file is {got} bytes long, shorter than the 4-byte magic number")));
    }
    if magic[0] != 0 || magic[1] != 0 {
        return Err(bad(format!(
            "the magic number starts with {:#04x} {:#04x}, not two zero bytes",
            magic[0], magic[1]
        )));
    }
    let dtype = IdxType::from_code(magic[2])
        .ok_or_else(|| bad(format!("unknown type code {:#04x} in the magic number", magic[2])))?;
    let ndims = usize::from(magic[3]);
    if ndims == 0 {
        return Err(bad("the magic number gives 0 dimensions".to_string()));
    }
    let mut header = vec![0u8; 4 * ndims];
    let got = read_up_to(reader, &mut header).map_err(io)?;
    if got < header.len() {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header.len() as u64,
            found: got as u64,
        });
    }
    let dims: Vec<usize> =
        header.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let count = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64).filter(|&n| n <= MAX_VALUES));
    let Some(count) = count else {
        return Err(bad(format!("its dimensions {dims:?} hold more than 2^31 values")));
    };
    let expected = count * dtype.size() as u64;
    let mut data = Vec::new();
    reader.take(expected + 1).read_to_end(&mut data).map_err(io)?;
    let found = data.len() as u64;
    if found < expected {
        return Err(DataError::Truncated { path: path.to_path_buf(), expected, found });
    }
    if found > expected {
        return Err(bad(format!("it is longer than its dimensions {dims:?} say")));
    }
    Ok(Idx { dtype, dims, data })
}

/// Reads until `buf` is full or the input ends; returns the number of bytes read.
fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
