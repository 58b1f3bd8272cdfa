//! The end of a call reaches a client that is still sending audio: the `hangup` event, then the closing
//! handshake (Close 1000), while the client sends audio far faster than real time and stops reading for a
//! moment just as the call is ended. The server used to drop the connection right after its Close; in
//! `bench latency` about one call in twenty then lost its last events. This test did not reproduce that
//! loss on the old code (it passed there too); it holds the handshake and the flood to account, and the
//! greeting cut by the end of the call, whose line used to be stored only after the hang-up went out, so
//! that the client never saw it. And a
//! caller that stops reading altogether: hung up once a send has waited 5 s, its slot free again.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use common::{
    http_get, provisioned_models, start_server, start_server_with, stop, supervisor_key, ws_request,
};

#[test]
fn a_client_still_sending_audio_receives_the_hangup_and_the_close() {
    let Some(models) = provisioned_models() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = supervisor_key(dir.path(), &models, "hangup test");
    let server = start_server(dir.path(), &models);
    let deadline = Instant::now() + Duration::from_secs(120);
    while http_get(&server.address, "/ready").0 != 200 {
        assert!(Instant::now() < deadline, "the server never became ready");
        std::thread::sleep(Duration::from_millis(200));
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            // Three calls: each must end with the hang-up event and a Close, never a reset.
            for _ in 0..3 {
                end_a_call_while_the_caller_floods_audio(&server.address, &key).await;
            }
        });
    }));
    if result.is_err() {
        // What the server did meanwhile: the only record of why a call's events stalled.
        for line in server.log.try_iter() {
            eprintln!("server: {line}");
        }
    }
    stop(server);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

async fn end_a_call_while_the_caller_floods_audio(address: &str, key: &str) {
    let http = reqwest::Client::new();
    let base = format!("http://{address}");
    let created: Value = http
        .post(format!("{base}/api/v1/calls"))
        .bearer_auth(key)
        .json(&json!({"direction": "inbound", "from_number": "+14155550123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    // A small receive buffer, so that what the server sends while we are not reading waits in its own
    // send queue, which a reset throws away.
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4_096).unwrap();
    let tcp = tcp.connect(address.parse().unwrap()).await.unwrap();
    let (socket, _) = tokio_tungstenite::client_async(
        ws_request(&format!("ws://{address}/ws/audio/{id}"), key),
        tcp,
    )
    .await
    .unwrap();
    let (mut sink, mut stream) = socket.split();
    sink.send(Message::text(
        json!({"event": "start", "start": {"encoding": "pcm16", "sample_rate": 16000}}).to_string(),
    ))
    .await
    .unwrap();

    // Quiet frames, far faster than real time, until the server stops taking them.
    let silence = base64::engine::general_purpose::STANDARD.encode([0u8; 640]);
    let frame = json!({"event": "media", "media": {"payload": silence}}).to_string();
    let flood = tokio::spawn(async move {
        let mut sent = 0u64;
        while sink.send(Message::text(frame.clone())).await.is_ok() {
            sent += 1;
            // About a thousand times real time: always some unread, without burning the test's CPU.
            if sent.is_multiple_of(20) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        sent
    });

    let mut events = Vec::new();
    let mut closed = None;
    let mut ended = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let message = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no end of call within 60 s; events: {events:?}"));
        match message {
            Some(Ok(Message::Text(text))) => {
                let event: Value = serde_json::from_str(text.as_str()).unwrap();
                let name = event["event"].as_str().unwrap_or_default().to_owned();
                // Once the agent's greeting is audible, the supervisor ends the call. (Its transcript line
                // comes only once the greeting has played out; in CI, beside another test's processes,
                // it did not come within 60 s of the flood, and the test timed out before its point.)
                if !ended && name == "media" {
                    let status = http
                        .delete(format!("{base}/api/v1/calls/{id}"))
                        .bearer_auth(key)
                        .send()
                        .await
                        .unwrap()
                        .status();
                    assert!(status.is_success(), "DELETE the call: {status}");
                    ended = true;
                    // A client busy elsewhere for a moment: the end of the call queues up behind the
                    // agent's audio while ours keeps arriving.
                    tokio::time::sleep(Duration::from_millis(1_500)).await;
                }
                if name != "media" {
                    events.push(name);
                }
            }
            Some(Ok(Message::Close(frame))) => {
                closed = Some(frame.map(|f| u16::from(f.code)));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                panic!("the connection failed instead of closing: {e}; events: {events:?}")
            }
            None => break,
        }
    }
    let sent = flood.await.unwrap();
    eprintln!("call {id}: {sent} frames sent; events {events:?}; close {closed:?}");
    assert!(
        events.iter().any(|e| e == "hangup"),
        "no hangup event: {events:?}"
    );
    assert_eq!(closed, Some(Some(1000)), "events: {events:?}");
    let lines: Value = http
        .get(format!("{base}/api/v1/calls/{id}/transcript"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The greeting cut by the end of the call is stored as far as it was heard, and announced before
    // the hang-up like every other line.
    let stored = lines["turns"].as_array().unwrap().len();
    assert!(stored >= 1, "the cut greeting is stored: {lines}");
    let hangup_at = events.iter().position(|e| e == "hangup").unwrap();
    let announced = events[..hangup_at]
        .iter()
        .filter(|e| *e == "transcript")
        .count();
    assert_eq!(
        announced, stored,
        "every stored line is announced before the hang-up; events {events:?}, stored {lines}"
    );
}

#[test]
fn a_caller_that_stops_reading_is_hung_up_and_its_slot_freed() {
    let Some(models) = provisioned_models() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = supervisor_key(dir.path(), &models, "stall test");
    // One call at a time: the second call connects only if the first one's slot was freed. An agent that
    // keeps talking to a silent caller (a reprompt a second after each), so there is always more to send.
    let server = start_server_with(
        dir.path(),
        &models,
        &[
            ("MAX_CONCURRENT_CALLS", "1"),
            ("SILENCE_REPROMPT_MS", "1000"),
            ("SILENCE_MAX_REPROMPTS", "20"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while http_get(&server.address, "/ready").0 != 200 {
        assert!(Instant::now() < deadline, "the server never became ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let address = server.address.clone();
            let base = format!("http://{address}");
            let http = reqwest::Client::new();
            let place = || async {
                let created: Value = http
                    .post(format!("{base}/api/v1/calls"))
                    .bearer_auth(&key)
                    .json(&json!({"direction": "inbound", "from_number": "+14155550123"}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                created["id"].as_str().unwrap().to_owned()
            };
            let stalled = place().await;
            // A tiny receive buffer and a caller who never reads, at 48 kHz (about 128 kB of events per
            // second of the agent's voice): the agent's audio soon fills every buffer between us (the
            // kernel's grow to megabytes), and the server's sends stop going through.
            let tcp = tokio::net::TcpSocket::new_v4().unwrap();
            tcp.set_recv_buffer_size(2_048).unwrap();
            let tcp = tcp.connect(address.parse().unwrap()).await.unwrap();
            let (socket, _) = tokio_tungstenite::client_async(
                ws_request(&format!("ws://{address}/ws/audio/{stalled}"), &key),
                tcp,
            )
            .await
            .unwrap();
            let (mut sink, stream) = socket.split();
            sink.send(Message::text(
                json!({"event": "start", "start": {"encoding": "pcm16", "sample_rate": 48000}})
                    .to_string(),
            ))
            .await
            .unwrap();
            let connected = Instant::now();
            // The caller's side stays alive: quiet audio in real time, as a phone line sends.
            let silence = base64::engine::general_purpose::STANDARD.encode([0u8; 1_920]);
            let frame = json!({"event": "media", "media": {"payload": silence}}).to_string();
            let talker = tokio::spawn(async move {
                let mut ticker = tokio::time::interval(Duration::from_millis(20));
                while tokio::time::timeout(Duration::from_secs(90), async {
                    ticker.tick().await;
                    sink.send(Message::text(frame.clone())).await
                })
                .await
                .is_ok_and(|sent| sent.is_ok())
                {}
            });
            let call = loop {
                let call: Value = http
                    .get(format!("{base}/api/v1/calls/{stalled}"))
                    .bearer_auth(&key)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if call["status"] == "ended" {
                    break call;
                }
                assert!(
                    connected.elapsed() < Duration::from_secs(60),
                    "the stalled caller still holds its call after 60 s: {call}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let held = connected.elapsed();
            eprintln!("a caller that stopped reading was hung up after {held:?}: {call}");
            assert_eq!(call["end_reason"], "caller_hung_up", "{call}");
            drop(stream);
            talker.abort();

            // The slot is free: the next call connects and is answered.
            let next = place().await;
            let (mut socket, _) = tokio_tungstenite::connect_async(ws_request(
                &format!("ws://{address}/ws/audio/{next}"),
                &key,
            ))
            .await
            .unwrap();
            let first = tokio::time::timeout(Duration::from_secs(10), socket.next())
                .await
                .expect("the next call got no answer")
                .unwrap()
                .unwrap();
            let event: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
            assert_eq!(event["event"], "connected", "{event}");
            let _ = socket.close(None).await;
        });
    }));
    let lines: Vec<String> = server.log.try_iter().collect();
    let stalled_logged = lines.iter().any(|l| l.contains("the peer stopped reading"));
    stop(server);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(
        stalled_logged,
        "the server never said the peer stopped reading"
    );
}
