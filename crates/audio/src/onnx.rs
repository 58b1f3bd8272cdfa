//! ONNX Runtime, loaded once per process from the library that `switchboard models fetch` provisions
//! (no binary is downloaded at build time). Silero VAD, Piper and Kokoro all run on it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

static RUNTIME: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The library's path inside MODELS_DIR, as the manifest installs it.
pub fn runtime_library(models_dir: &Path) -> PathBuf {
    models_dir.join("onnxruntime/libonnxruntime.so.1.31.1")
}

/// Loads ONNX Runtime from `library` the first time it is called; later calls return the first outcome
/// (ONNX Runtime allows one environment per process). Sessions are built on the returned environment.
pub fn ensure_runtime(library: &Path) -> Result<&'static Environment, String> {
    RUNTIME
        .get_or_init(|| {
            if !library.is_file() {
                return Err(format!(
                    "ONNX Runtime library {} is missing; run `switchboard models fetch onnxruntime`",
                    library.display()
                ));
            }
            let builder = ort::init_from(library).map_err(|e| format!("cannot load {}: {e}", library.display()))?;
            builder
                .with_name("switchboard")
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", library.display()))
        })
        .as_ref()
        .map_err(Clone::clone)
}
