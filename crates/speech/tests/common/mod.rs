//! What the speech tests share.

use std::path::PathBuf;

use switchboard_audio::corpus::models_dir_for_tests;

/// The converted whisper-tiny `make models` provisions; `None` (the test skips) when it is missing
/// outside CI, a failure under CI=true.
pub(crate) fn provisioned_whisper_tiny() -> Option<PathBuf> {
    let ggml = models_dir_for_tests().join("whisper-tiny/ggml-model.bin");
    if ggml.is_file() {
        return Some(ggml);
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "CI=true and whisper-tiny is missing"
    );
    eprintln!("SKIPPED: whisper-tiny is not provisioned (make models)");
    None
}
