//! The models' own reference runtimes (installed by `scripts/reference-runtimes.sh` from PyPI), run on the
//! same model files and inputs as ours so a benchmark can print the ratio measured in one run.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// How to install the reference runtimes, for the "not measured" notes.
pub(crate) const INSTALL_HINT: &str = "run scripts/reference-runtimes.sh to measure it beside ours";

/// Where `scripts/reference-runtimes.sh` installs (SWITCHBOARD_PYREF overrides).
fn install_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SWITCHBOARD_PYREF") {
        return Some(PathBuf::from(dir));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/switchboard/pyref"))
}

/// Runs `script` (Python source) with the reference runtimes importable, `request` as JSON on stdin, and
/// parses the JSON it prints. `Ok(None)` when the runtimes are not installed.
pub(crate) fn run(
    script: &str,
    request: &serde_json::Value,
) -> anyhow::Result<Option<serde_json::Value>> {
    let Some(dir) = install_dir().filter(|d| d.is_dir()) else {
        return Ok(None);
    };
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("PYTHONPATH", &dir)
        .env("HF_HUB_OFFLINE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start python3 for the reference runtime")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(request.to_string().as_bytes())
            .context("cannot send the request to the reference runtime")?;
    }
    let out = child
        .wait_with_output()
        .context("the reference runtime did not finish")?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("no message");
        bail!(
            "the reference runtime in {} failed: {last} (reinstall with scripts/reference-runtimes.sh)",
            dir.display()
        );
    }
    serde_json::from_slice(&out.stdout)
        .map(Some)
        .context("the reference runtime printed something other than JSON")
}
