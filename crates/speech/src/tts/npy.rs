//! The little of NumPy's `.npy` / `.npz` formats that Kokoro's voice files use: little-endian float32
//! arrays in C order, stored (uncompressed or deflated) in a zip archive, one array per voice.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::TtsError;

/// A float32 array and its shape.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Array {
    /// Dimensions, outermost first.
    pub(super) shape: Vec<usize>,
    /// Values in C order.
    pub(super) data: Vec<f32>,
}

/// Largest archive member read (a voice is 510 × 256 floats, about 0.5 MB).
const MAX_MEMBER: u64 = 64 * 1024 * 1024;

/// Every array in the `.npz` at `path`, by name (without `.npy`).
pub(super) fn read_npz(path: &Path) -> Result<BTreeMap<String, Array>, TtsError> {
    let bad = |detail: String| TtsError::Load(format!("voices file {}: {detail}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| bad(format!("not a NumPy .npz archive ({e})")))?;
    let mut arrays = BTreeMap::new();
    for index in 0..archive.len() {
        let mut member = archive.by_index(index).map_err(|e| bad(e.to_string()))?;
        let Some(name) = member.name().strip_suffix(".npy").map(str::to_owned) else {
            continue;
        };
        if member.size() > MAX_MEMBER {
            return Err(bad(format!("{name} is {} bytes, too large", member.size())));
        }
        let mut bytes = Vec::with_capacity(member.size() as usize);
        member
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("{name}: {e}")))?;
        let array = parse_npy(&bytes).map_err(|e| bad(format!("{name}: {e}")))?;
        arrays.insert(name, array);
    }
    Ok(arrays)
}

/// Parses one `.npy` file's bytes.
pub(super) fn parse_npy(bytes: &[u8]) -> Result<Array, String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if !bytes.starts_with(MAGIC) || bytes.len() < 10 {
        return Err("not a .npy array".into());
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!(".npy version {v} is not supported")),
    };
    let header = bytes
        .get(header_start..header_start + header_len)
        .ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let descr = dict_value(header, "descr").ok_or("header has no descr")?;
    let descr = descr
        .trim_start_matches(['\'', '"'])
        .split(['\'', '"'])
        .next()
        .unwrap_or("");
    if !matches!(descr, "<f4" | "float32") {
        return Err(format!("dtype {descr} is not little-endian float32"));
    }
    if dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err("Fortran-ordered arrays are not supported".into());
    }
    let shape_text = dict_value(header, "shape")
        .and_then(|v| v.strip_prefix('('))
        .and_then(|v| v.split(')').next())
        .ok_or("header has no shape")?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape ({shape_text})"))
        })
        .collect::<Result<_, _>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |n, d| n.checked_mul(*d))
        .ok_or("shape overflows")?;
    let body = &bytes[header_start + header_len..];
    if body.len() != count * 4 {
        return Err(format!(
            "shape {shape:?} needs {} bytes, found {}",
            count * 4,
            body.len()
        ));
    }
    let data = body
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Array { shape, data })
}

/// The text after `'key':` in a NumPy header dictionary.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[f32]) -> Vec<u8> {
        let mut header = header.to_owned();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        for v in data {
            bytes.extend(v.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn reads_a_float32_array() {
        let bytes = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 3), }",
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        );
        let array = parse_npy(&bytes).unwrap();
        assert_eq!(array.shape, vec![2, 1, 3]);
        assert_eq!(array.data[5], 6.0);
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        let f64s = npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }",
            &[1.0, 0.0],
        );
        assert!(parse_npy(&f64s).unwrap_err().contains("float32"));
        let short = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
            &[1.0],
        );
        assert!(parse_npy(&short).unwrap_err().contains("needs 12 bytes"));
        assert!(parse_npy(b"PK\x03\x04").is_err());
        assert!(parse_npy(b"\x93NUMPY\x01\x00\xff\xff").is_err());
    }

    #[test]
    fn npz_archives_are_read_by_member_name() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("voices.npz");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file("af_test.npy", options).unwrap();
        zip.write_all(&npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
            &[0.5, -0.5],
        ))
        .unwrap();
        zip.finish().unwrap();
        let voices = read_npz(&path).unwrap();
        assert_eq!(voices["af_test"].data, vec![0.5, -0.5]);
        let not_zip = dir.path().join("x.npz");
        std::fs::write(&not_zip, b"hello").unwrap();
        assert!(
            read_npz(&not_zip)
                .unwrap_err()
                .to_string()
                .contains("not a NumPy")
        );
    }
}
