//! The console end to end in headless Chromium: sign in with an API key, call the agent from the
//! softphone with a real recording as the microphone, and see the caller's words and the agent's answer
//! on the page. Chromium is driven over its DevTools protocol.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{provisioned_models, speech_corpus_installed, start_server, stop, supervisor_key};

const CHROMIUM: &str = "/usr/bin/chromium";

/// A page in Chromium, driven over the DevTools protocol.
struct Page {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Page {
    async fn open(port: u16) -> Self {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            let targets: Option<Value> =
                match reqwest::get(format!("http://127.0.0.1:{port}/json/list")).await {
                    Ok(r) => r.json().await.ok(),
                    Err(_) => None,
                };
            if let Some(url) = targets
                .as_ref()
                .and_then(|t| t.as_array())
                .and_then(|t| t.iter().find(|t| t["type"] == "page"))
                .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            {
                break url.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "chromium never offered a page to drive"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let (socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        Self { socket, next_id: 0 }
    }

    /// The value of a JavaScript expression in the page.
    async fn eval(&mut self, expression: &str) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"id": id, "method": "Runtime.evaluate",
            "params": {"expression": expression, "returnByValue": true, "awaitPromise": true}});
        self.socket
            .send(Message::text(request.to_string()))
            .await
            .unwrap();
        while let Some(message) = self.socket.next().await {
            let Message::Text(text) = message.unwrap() else {
                continue;
            };
            let reply: Value = serde_json::from_str(text.as_str()).unwrap();
            if reply["id"] == id {
                return reply["result"]["result"]["value"].clone();
            }
        }
        panic!("chromium closed the DevTools connection");
    }

    /// Polls `expression` until it is true.
    async fn wait_for(&mut self, expression: &str, timeout: Duration, what: &str) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.eval(expression).await == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let page = self.eval("document.body.innerText").await;
        let status = self
            .eval("fetch('/api/v1/calls').then(r => r.status + ' ' + location.href)")
            .await;
        panic!(
            "{what} within {} s ({status}); the page shows:\n{page}",
            timeout.as_secs()
        );
    }
}

/// A microphone recording: a second of silence, the caller's sentence, then silence (Chromium loops it).
fn microphone(dir: &Path) -> std::path::PathBuf {
    let mut reader =
        hound::WavReader::open("/usr/share/asterisk/sounds/en/telephone-number.wav").unwrap();
    let speech: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let rate = reader.spec().sample_rate;
    let path = dir.join("microphone.wav");
    let mut writer = hound::WavWriter::create(
        &path,
        hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        },
    )
    .unwrap();
    let silence = |seconds: u32| vec![0i16; (rate * seconds) as usize];
    for s in silence(5).into_iter().chain(speech).chain(silence(8)) {
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
    path
}

fn chromium(url: &str, port: u16, profile: &Path, mic: &Path) -> Child {
    Command::new(CHROMIUM)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            "--autoplay-policy=no-user-gesture-required",
        ])
        .arg(format!(
            "--use-file-for-fake-audio-capture={}",
            mic.display()
        ))
        .arg(format!("--remote-debugging-port={port}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_console_signs_in_and_its_softphone_talks_with_the_agent() {
    if !speech_corpus_installed() {
        return;
    }
    let Some(models) = provisioned_models() else {
        return;
    };
    if !Path::new(CHROMIUM).is_file() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true and chromium is missing (make setup)"
        );
        eprintln!("SKIPPED: chromium not installed (make setup)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = supervisor_key(dir.path(), &models, "console test");
    let server = start_server(dir.path(), &models);
    let base = format!("http://{}", server.address);
    let port = free_port();
    let profile = dir.path().join("chromium");
    let mut browser = chromium(&format!("{base}/"), port, &profile, &microphone(dir.path()));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let mut page = Page::open(port).await;
            // The first page may still be about:blank: wait for the console's own document.
            page.wait_for(
                "document.readyState === 'complete' && !!document.getElementById('signin-button')",
                Duration::from_secs(20),
                "the console never loaded",
            )
            .await;
            // A wrong key is refused on the page.
            page.eval("document.getElementById('key').value = 'sb_wrong_key'; document.getElementById('signin-button').click(); true").await;
            page.wait_for("document.getElementById('signin-error').innerText.includes('failed')", Duration::from_secs(10), "a bad key was not refused").await;
            page.eval(&format!("document.getElementById('key').value = '{key}'; document.getElementById('signin-button').click(); true")).await;
            page.wait_for("!document.getElementById('app').hidden", Duration::from_secs(10), "sign-in did not open the console").await;
            // Models load in the background after start-up: the call is placed once the node is ready.
            let deadline = Instant::now() + Duration::from_secs(120);
            while reqwest::get(format!("{base}/ready")).await.map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
                assert!(Instant::now() < deadline, "the server never became ready");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            page.eval("document.getElementById('dial').click(); true").await;
            page.wait_for(
                "document.getElementById('transcript').innerText.toLowerCase().includes('agent: thank you for calling')",
                Duration::from_secs(60),
                "the agent's greeting did not appear",
            )
            .await;
            page.wait_for(
                "[...document.querySelectorAll('#transcript .caller:not(.partial)')].some(n => /telephone|number/i.test(n.innerText))",
                Duration::from_secs(90),
                "the caller's words did not appear",
            )
            .await;
            page.wait_for(
                "document.querySelectorAll('#transcript .agent').length >= 2",
                Duration::from_secs(90),
                "the agent's answer did not appear",
            )
            .await;
            let text = page.eval("document.getElementById('transcript').innerText").await;
            eprintln!("console transcript:\n{}", text.as_str().unwrap_or_default());
            page.eval("document.getElementById('hangup').click(); true").await;
        });
    }));
    let _ = browser.kill();
    let _ = browser.wait();
    stop(server);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
