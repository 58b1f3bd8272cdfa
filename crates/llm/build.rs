//! Puts llama.cpp's shared libraries where binaries look for them.
//!
//! llama-cpp-sys-2 builds llama.cpp and ggml as shared libraries (so they can share a binary with
//! whisper.cpp's static ggml) and links `libllama.so`, `libggml.so`… into the target directory, but those are
//! symlinks to `libllama.so.0` and so on, which the loader asks for and which it leaves in its build
//! directory. This copies the `.so.0` files beside them, into `target/<profile>` (found through the
//! binary's `$ORIGIN` rpath), `target/<profile>/deps` (tests) and `examples`, so no link dangles (a dangling
//! one makes llama-cpp-sys-2's next build fail). It runs after llama-cpp-sys-2's build
//! script, because this crate depends on it directly.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(out_dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    // target/<profile>/build/switchboard-llm-<hash>/out
    let Some(profile_dir) = out_dir.ancestors().nth(3).map(Path::to_path_buf) else {
        return;
    };
    let Some(lib_dir) = newest_lib_dir(&profile_dir.join("build")) else {
        println!(
            "cargo:warning=llama-cpp-sys-2's libraries were not found under {}",
            profile_dir.display()
        );
        return;
    };
    // Run again when the libraries are rebuilt in place. A rebuild into a new directory under build/
    // reruns this script anyway: llama-cpp-sys-2 declares `links`, so cargo reruns the build scripts of
    // the packages that depend on it. Not the whole build/ directory: cargo scans a directory for any
    // newer file, and this script's own output lies there, so every cargo command rebuilt this crate
    // and everything above it.
    println!("cargo:rerun-if-changed={}", lib_dir.display());
    let Ok(entries) = std::fs::read_dir(&lib_dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".so.0") {
            continue;
        }
        // llama-cpp-sys-2 links into examples/ as well; a dangling link there fails its next build.
        for dir in [
            profile_dir.clone(),
            profile_dir.join("deps"),
            profile_dir.join("examples"),
        ] {
            if !dir.is_dir() {
                continue;
            }
            let target = dir.join(&name);
            if same_file(&entry.path(), &target) {
                continue;
            }
            let _ = std::fs::remove_file(&target);
            if let Err(e) = std::fs::copy(entry.path(), &target) {
                println!("cargo:warning=cannot copy {name} to {}: {e}", dir.display());
            }
        }
    }
}

/// The newest `llama-cpp-sys-2-*/out/lib` holding `libllama.so.0`.
fn newest_lib_dir(build_dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(build_dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("llama-cpp-sys-2-")
        })
        .map(|entry| entry.path().join("out").join("lib"))
        .filter(|lib| lib.join("libllama.so.0").exists())
        .max_by_key(|lib| modified(&lib.join("libllama.so.0")))
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Same size and the copy no older than the original.
fn same_file(original: &Path, copy: &Path) -> bool {
    match (std::fs::metadata(original), std::fs::metadata(copy)) {
        (Ok(a), Ok(b)) => a.len() == b.len() && modified(copy) >= modified(original),
        _ => false,
    }
}
