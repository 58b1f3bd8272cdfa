//! Is a model file on disk whole? Size first (cheap, catches truncation), then SHA-256.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{DerivedSpec, FileSpec, ModelSpec, ModelsError};

/// The state of one model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    /// Right size and hash.
    Present,
    /// Not on disk.
    Missing,
    /// On disk but not what the manifest says.
    Corrupt(String),
}

/// The state of a whole model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelStatus {
    /// Every file verified.
    Present,
    /// No file on disk.
    Missing,
    /// Some files missing, none corrupt.
    Incomplete,
    /// At least one file does not match.
    Corrupt,
}

impl fmt::Display for ModelStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelStatus::Present => "present",
            ModelStatus::Missing => "missing",
            ModelStatus::Incomplete => "incomplete",
            ModelStatus::Corrupt => "corrupt",
        })
    }
}

/// Checks one file against its manifest entry.
pub fn verify_file(models_dir: &Path, spec: &FileSpec) -> Result<FileStatus, ModelsError> {
    verify_path(models_dir, &spec.path, spec.size, &spec.sha256)
}

/// Checks a converted file against its manifest entry.
pub fn verify_derived(models_dir: &Path, spec: &DerivedSpec) -> Result<FileStatus, ModelsError> {
    verify_path(models_dir, &spec.path, spec.size, &spec.sha256)
}

fn verify_path(
    models_dir: &Path,
    relative: &str,
    size: u64,
    sha256: &str,
) -> Result<FileStatus, ModelsError> {
    let path = models_dir.join(relative);
    let meta = match std::fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileStatus::Missing),
        Err(e) => return Err(ModelsError::io("cannot inspect", &path)(e)),
    };
    if !meta.is_file() {
        return Ok(FileStatus::Corrupt("not a regular file".into()));
    }
    if meta.len() != size {
        return Ok(FileStatus::Corrupt(format!(
            "{} bytes, expected {size}",
            meta.len()
        )));
    }
    let mut file = File::open(&path).map_err(ModelsError::io("cannot read", &path))?;
    let digest = sha256_of(&mut file, |_| {}).map_err(ModelsError::io("cannot read", &path))?;
    if digest == sha256 {
        Ok(FileStatus::Present)
    } else {
        Ok(FileStatus::Corrupt(format!(
            "sha256 {digest}, expected {sha256}"
        )))
    }
}

/// Checks every file of a model and sums them up.
pub fn model_status(
    models_dir: &Path,
    model: &ModelSpec,
) -> Result<(ModelStatus, Vec<FileStatus>), ModelsError> {
    let files = model
        .files
        .iter()
        .map(|f| verify_file(models_dir, f))
        .chain(model.derived.iter().map(|d| verify_derived(models_dir, d)))
        .collect::<Result<Vec<_>, _>>()?;
    let status = if files.iter().all(|f| *f == FileStatus::Present) {
        ModelStatus::Present
    } else if files.iter().any(|f| matches!(f, FileStatus::Corrupt(_))) {
        ModelStatus::Corrupt
    } else if files.iter().all(|f| *f == FileStatus::Missing) {
        ModelStatus::Missing
    } else {
        ModelStatus::Incomplete
    };
    Ok((status, files))
}

/// Streams a reader through SHA-256, reporting bytes read, and returns lower-case hex.
pub(crate) fn sha256_of(
    reader: &mut impl Read,
    mut on_bytes: impl FnMut(u64),
) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        on_bytes(n as u64);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PartRef;

    fn spec_for(content: &[u8]) -> FileSpec {
        FileSpec {
            path: "m/file.bin".into(),
            size: content.len() as u64,
            sha256: hex::encode(Sha256::digest(content)),
            parts: vec![PartRef {
                package: "p".into(),
                member: "a".into(),
            }],
        }
    }

    #[test]
    fn missing_present_truncated_and_altered_files_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec_for(b"hello model");
        assert_eq!(verify_file(dir.path(), &spec).unwrap(), FileStatus::Missing);
        std::fs::create_dir_all(dir.path().join("m")).unwrap();
        std::fs::write(dir.path().join("m/file.bin"), b"hello model").unwrap();
        assert_eq!(verify_file(dir.path(), &spec).unwrap(), FileStatus::Present);
        std::fs::write(dir.path().join("m/file.bin"), b"hello").unwrap();
        assert!(
            matches!(verify_file(dir.path(), &spec).unwrap(), FileStatus::Corrupt(r) if r.contains("bytes"))
        );
        std::fs::write(dir.path().join("m/file.bin"), b"hello MODEL").unwrap();
        assert!(
            matches!(verify_file(dir.path(), &spec).unwrap(), FileStatus::Corrupt(r) if r.contains("sha256"))
        );
    }
}
