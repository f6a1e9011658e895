//! Arrays out of genc: numpy's `.npy` format (version 1.0, little-endian float32, C order),
//! written atomically, so any other tool can read samples with `np.load`.

use std::path::Path;

use crate::data::DataError;
use crate::images::write_atomic;

/// The bytes of a `.npy` file holding `values` with `shape`.
pub fn encode_f32(values: &[f32], shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    // A 1-tuple needs its trailing comma in Python's syntax.
    let shape_text =
        if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + header length (2) + header, padded with spaces and ended by a
    // newline to a multiple of 64 bytes, as numpy writes it.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * values.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes `values` with `shape` to `path` as a `.npy` file, atomically.
pub fn write_f32(path: &Path, values: &[f32], shape: &[usize]) -> Result<(), DataError> {
    let expected: usize = shape.iter().product();
    if expected != values.len() {
        return Err(DataError::Write {
            path: path.to_path_buf(),
            reason: format!("{} values for shape {shape:?}", values.len()),
        });
    }
    write_atomic(path, &encode_f32(values, shape))
}

/// The float32 array of a `.npy` file (version 1 or 2, little-endian `<f4`, C order) and its
/// shape, or why it cannot be read.
pub fn decode_f32(bytes: &[u8]) -> Result<(Vec<f32>, Vec<usize>), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => {
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(format!(".npy version {v} is not supported")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("the .npy header is cut short or not text")?;
    if !header.contains("'descr': '<f4'") {
        return Err(format!("genc reads float32 arrays ('<f4'); this one is {}", header.trim()));
    }
    if header.contains("'fortran_order': True") {
        return Err("genc reads C-order arrays; this one is in Fortran order".into());
    }
    let shape_text = header
        .split("'shape':")
        .nth(1)
        .and_then(|rest| rest.split('(').nth(1))
        .and_then(|rest| rest.split(')').next())
        .ok_or("the .npy header has no shape")?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().map_err(|_| format!("the .npy shape `({shape_text})` is not whole numbers")))
        .collect::<Result<_, _>>()?;
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("the .npy shape overflows")?;
    let data = &bytes[start + header_len..];
    if data.len() != n.checked_mul(4).ok_or("the .npy shape overflows")? {
        return Err(format!(
            "a shape of {shape:?} needs {} bytes of data, the file has {}",
            n * 4,
            data.len()
        ));
    }
    Ok((data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(), shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_numpys_padded_to_64_bytes() {
        let bytes = encode_f32(&[1.0, -2.5], &[2, 1]);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap_or_default();
        assert!(
            header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }"),
            "{header}"
        );
        assert!(header.ends_with('\n'));
        assert_eq!(&bytes[10 + len..], [1.0f32.to_le_bytes(), (-2.5f32).to_le_bytes()].concat());
    }

    #[test]
    fn a_one_dimensional_shape_keeps_its_comma() {
        let bytes = encode_f32(&[0.0; 3], &[3]);
        let header = String::from_utf8_lossy(&bytes[10..]);
        assert!(header.contains("'shape': (3,),"), "{header}");
    }

    #[test]
    fn decoding_reads_back_what_encoding_wrote_and_refuses_the_rest() {
        let bytes = encode_f32(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
        assert_eq!(decode_f32(&bytes), Ok((vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![2, 3])));
        assert!(decode_f32(b"PK\x03\x04 not numpy").is_err());
        assert!(decode_f32(&bytes[..bytes.len() - 4]).is_err_and(|e| e.contains("needs 24 bytes")));
        let mut doubles = bytes.clone();
        let at = doubles.windows(3).position(|w| w == b"<f4").unwrap_or_default();
        doubles[at + 2] = b'8';
        assert!(decode_f32(&doubles).is_err_and(|e| e.contains("float32")));
    }
}
