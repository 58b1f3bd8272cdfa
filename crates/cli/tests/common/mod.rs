//! Helpers shared by the binary's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod calls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// A command with a clean configuration environment rooted in `data_dir`.
pub(crate) fn switchboard(data_dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if switchboard_core::config::settings::ALL
            .iter()
            .any(|s| s.env == key)
            || key == "CONFIG_FILE"
        {
            cmd.env_remove(key);
        }
    }
    cmd.env("DATA_DIR", data_dir)
        .current_dir(data_dir)
        .stdin(Stdio::null());
    cmd
}

/// Whether Debian's recorded prompts are installed; outside CI a missing corpus skips, under CI=true it fails.
pub(crate) fn speech_corpus_installed() -> bool {
    let installed =
        std::path::Path::new("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
            .is_file()
            && std::path::Path::new("/usr/share/asterisk/sounds/en/auth-incorrect.wav").is_file();
    if !installed {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true and the asterisk prompts are missing"
        );
        eprintln!("SKIPPED: asterisk prompts not installed (make setup)");
    }
    installed
}

/// The models `make test` provisions once into MODELS_DIR (the configured one, stable across clones).
pub(crate) fn provisioned_models() -> Option<PathBuf> {
    let out = Command::new(BIN)
        .args(["models", "list", "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dir = PathBuf::from(list["models_dir"].as_str().unwrap());
    let ok = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["required"] == true)
        .all(|m| m["status"] == "present");
    if ok {
        Some(dir)
    } else if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "CI=true and the default models are not provisioned in {}: run `make models`",
            dir.display()
        );
    } else {
        eprintln!(
            "SKIPPED: default models not provisioned in {}; run `make models`",
            dir.display()
        );
        None
    }
}

/// A new supervisor API key in the database under `data_dir`, as an operator makes one.
#[allow(dead_code)]
pub(crate) fn supervisor_key(data_dir: &Path, models_dir: &Path, name: &str) -> String {
    let made = switchboard(data_dir)
        .env("MODELS_DIR", models_dir)
        .args(["keys", "create", "--role", "supervisor", "--name", name])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    String::from_utf8(made.stdout).unwrap().trim().to_owned()
}

/// A running `switchboard serve` and the address it listens on (read from its JSON log).
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) address: String,
    pub(crate) log: std::sync::mpsc::Receiver<String>,
}

pub(crate) fn start_server(data_dir: &Path, models_dir: &Path) -> Server {
    start_server_with(data_dir, models_dir, &[])
}

/// `switchboard serve` with `env` set as well.
pub(crate) fn start_server_with(
    data_dir: &Path,
    models_dir: &Path,
    env: &[(&str, &str)],
) -> Server {
    let mut child = switchboard(data_dir)
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("MODELS_DIR", models_dir)
        .envs(env.iter().copied())
        .arg("serve")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("log line is not JSON: {line}"));
        if event["message"] == "listening" {
            let address = event["address"].as_str().unwrap().to_owned();
            return Server {
                child,
                address,
                log: rx,
            };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("server did not report its address");
}

pub(crate) fn http_get(address: &str, path: &str) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    (code, serde_json::from_str(body).unwrap())
}

/// POSTs `body` as JSON with an API key; the status and the JSON answer.
#[allow(dead_code)]
pub(crate) fn http_post_json(
    address: &str,
    path: &str,
    api_key: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let body = body.to_string();
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAuthorization: Bearer {api_key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    (code, serde_json::from_str(body).unwrap_or_default())
}

/// Sends `signal` (`TERM`, `KILL`, or `0` to ask whether it runs) to process `pid`; true when delivered.
#[allow(dead_code)]
pub(crate) fn signal(pid: &str, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Sends SIGTERM as an operator does and waits up to `within` for the exit, which must be clean.
pub(crate) fn terminate(child: &mut Child, within: Duration) {
    assert!(signal(&child.id().to_string(), "TERM"));
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit after SIGTERM: {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no exit within {within:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn stop(mut server: Server) {
    terminate(&mut server.child, Duration::from_secs(15));
    let lines: Vec<String> = server.log.try_iter().collect();
    assert!(
        lines.iter().any(|l| l.contains("\"signal\":\"SIGTERM\"")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("\"message\":\"stopped\"")),
        "{lines:?}"
    );
}

/// A private CA and a server certificate it signed for 127.0.0.1 and localhost, made with openssl as an
/// operator would; returns (CA certificate, server certificate, server key).
pub(crate) fn private_ca_certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = dir.join("ca.crt");
    let ca_key = dir.join("ca.key");
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let openssl = |args: &[&std::ffi::OsStr]| {
        let made = Command::new("openssl").args(args).output().unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
    };
    let p = |path: &Path| path.as_os_str().to_owned();
    let s = |text: &str| std::ffi::OsString::from(text);
    openssl(&[
        &s("req"),
        &s("-x509"),
        &s("-newkey"),
        &s("ec"),
        &s("-pkeyopt"),
        &s("ec_paramgen_curve:P-256"),
        &s("-nodes"),
        &s("-days"),
        &s("2"),
        &s("-subj"),
        &s("/CN=Switchboard test CA"),
        &s("-keyout"),
        &p(&ca_key),
        &s("-out"),
        &p(&ca),
    ]);
    openssl(&[
        &s("req"),
        &s("-newkey"),
        &s("ec"),
        &s("-pkeyopt"),
        &s("ec_paramgen_curve:P-256"),
        &s("-nodes"),
        &s("-subj"),
        &s("/CN=localhost"),
        &s("-keyout"),
        &p(&key),
        &s("-out"),
        &p(&csr),
    ]);
    openssl(&[
        &s("x509"),
        &s("-req"),
        &s("-in"),
        &p(&csr),
        &s("-CA"),
        &p(&ca),
        &s("-CAkey"),
        &p(&ca_key),
        &s("-CAcreateserial"),
        &s("-days"),
        &s("2"),
        &s("-extfile"),
        &p(&ext),
        &s("-out"),
        &p(&cert),
    ]);
    (ca, cert, key)
}

/// The WebSocket request for `url` carrying `key` in its Authorization header (not in the URL).
#[allow(dead_code)]
pub(crate) fn ws_request(
    url: &str,
    key: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}
