//! An OpenAI-compatible model server on loopback, for fault tests (a test tool, never the product): it
//! answers `POST /v1/chat/completions` with a streamed chunk per answer, and can stall one request mid
//! answer, after its headers and first event, as a hung llama.cpp or vLLM server does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What the server was asked and did.
#[derive(Default)]
pub(crate) struct Served {
    /// Requests received.
    pub(crate) requests: AtomicUsize,
    /// The last user message of each request, in order.
    pub(crate) asked: Mutex<Vec<String>>,
    /// Whether the stalled request's client gave up on it (closed the connection).
    pub(crate) stall_abandoned: AtomicBool,
}

/// A running server: its `/v1` URL and what it saw.
pub(crate) struct ModelServer {
    pub(crate) base_url: String,
    pub(crate) served: Arc<Served>,
}

/// Serves on a free loopback port. The request whose last user message contains `stall_on` gets its
/// headers and a first event, then nothing until the client leaves; every other request is answered
/// with `answer` (and `{}` for a request that asks for JSON).
pub(crate) fn start(stall_on: &'static str, answer: &'static str) -> ModelServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let served = Arc::new(Served::default());
    let seen = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let seen = seen.clone();
            std::thread::spawn(move || serve(stream, &seen, stall_on, answer));
        }
    });
    ModelServer { base_url, served }
}

fn serve(stream: TcpStream, served: &Served, stall_on: &str, answer: &str) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    served.requests.fetch_add(1, Ordering::SeqCst);
    let last_user = request["messages"]
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    served.asked.lock().unwrap().push(last_user.clone());
    let mut out = stream;
    let _ = out.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n",
    );
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let event = serde_json::json!({
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "model": "test",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        format!("data: {event}\n\n")
    };
    let _ = out.write_all(
        chunk(
            serde_json::json!({"role": "assistant", "content": ""}),
            None,
        )
        .as_bytes(),
    );
    let _ = out.flush();
    if last_user.contains(stall_on) {
        // Stalled: the client must give up by itself; it closes the connection when it does.
        let mut rest = [0u8; 64];
        while matches!(reader.read(&mut rest), Ok(n) if n > 0) {}
        served.stall_abandoned.store(true, Ordering::SeqCst);
        return;
    }
    let text = if request.get("response_format").is_some() {
        "{}"
    } else {
        answer
    };
    let _ = out.write_all(chunk(serde_json::json!({"content": text}), None).as_bytes());
    let _ = out.write_all(chunk(serde_json::json!({}), Some("stop")).as_bytes());
    let _ = out.write_all(b"data: [DONE]\n\n");
    let _ = out.flush();
}
