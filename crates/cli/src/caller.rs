//! A caller over `/ws/audio`, for `switchboard call` and `switchboard bench latency`: it places a call
//! through the API, plays each scripted turn in real time (silence in between, as a phone line would),
//! waits for the agent's answer, and reports per turn when the caller stopped speaking (from the audio
//! itself), when the agent's first audio came back, and the server's breakdown of that latency.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

/// 20 ms at 16 kHz.
const FRAME: usize = 320;
/// Quiet after the agent's end-of-speech mark that means it has finished answering.
const AGENT_DONE_QUIET: Duration = Duration::from_millis(800);

/// What a scripted caller says and how patient it is.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    /// The caller's number (the agent looks up their previous calls by it).
    pub(crate) from: String,
    /// Where the call came from, stored in the call's context.
    pub(crate) source: &'static str,
    /// Caller turns in order: a label for the report and 16 kHz mono samples.
    pub(crate) turns: Vec<(String, Vec<i16>)>,
    /// Longest wait for the agent's answer to one turn.
    pub(crate) turn_timeout: Duration,
    /// Wait for the call's synthesis and stored transcript after hang-up.
    pub(crate) fetch_record: bool,
}

/// One call's outcome.
#[derive(Debug)]
pub(crate) struct CallResult {
    /// Per turn latencies, end reason, claim and synthesis.
    pub(crate) report: Value,
    /// What the agent said, 16 kHz.
    pub(crate) agent_audio: Vec<i16>,
    /// The stored transcript and every non-audio event received.
    pub(crate) transcript: Value,
}

/// What the reader saw, with times relative to the connection.
#[derive(Default)]
struct Heard {
    agent_audio: Vec<i16>,
    last_media: Option<Instant>,
    events: Vec<Value>,
    latencies: Vec<Value>,
    hangup: Option<String>,
}

/// Places one scripted call on the server at `base` and plays it through.
pub(crate) async fn place_call(
    base: &str,
    token: &str,
    script: &Script,
) -> anyhow::Result<CallResult> {
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{base}/api/v1/calls"))
        .bearer_auth(token)
        .json(&json!({
            "from_number": script.from,
            "direction": "inbound",
            "context": { "source": script.source }
        }))
        .send()
        .await
        .context("cannot reach the server")?
        .error_for_status()
        .context("the server refused to create the call")?
        .json()
        .await?;
    let call_id = created["id"]
        .as_str()
        .ok_or_else(|| anyhow!("the server's answer has no call id: {created}"))?
        .to_owned();
    let ws_url = format!(
        "{}/ws/audio/{call_id}?token={token}",
        base.replacen("http", "ws", 1)
    );
    let (socket, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .context("cannot open the call's audio WebSocket")?;
    let (mut sink, mut stream) = socket.split();
    sink.send(Message::text(
        json!({"event": "start", "start": {"encoding": "pcm16", "sample_rate": 16000}}).to_string(),
    ))
    .await?;
    let t0 = Instant::now();

    // Reader: the agent's audio, marks (end of each agent speech), transcript and latency events.
    let heard = Arc::new(Mutex::new(Heard::default()));
    let (marks_tx, mut marks_rx) = watch::channel(0u32);
    let (media_tx, mut media_rx) = watch::channel(None::<Instant>);
    let reader = {
        let heard = heard.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(event) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                let now = Instant::now();
                let mut heard = heard
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match event["event"].as_str() {
                    Some("media") => {
                        if let Some(bytes) = event["media"]["payload"]
                            .as_str()
                            .and_then(|p| BASE64.decode(p).ok())
                        {
                            heard.agent_audio.extend(
                                bytes
                                    .chunks_exact(2)
                                    .map(|b| i16::from_le_bytes([b[0], b[1]])),
                            );
                        }
                        heard.last_media = Some(now);
                        let _ = media_tx.send(Some(now));
                    }
                    Some("mark") => {
                        marks_tx.send_modify(|n| *n += 1);
                    }
                    Some("latency") => heard.latencies.push(event.clone()),
                    Some("hangup") => heard.hangup = event["reason"].as_str().map(str::to_owned),
                    _ => {}
                }
                if event["event"] != "media" {
                    let mut logged = event;
                    logged["t"] = json!(now.duration_since(t0).as_secs_f64());
                    heard.events.push(logged);
                }
            }
        })
    };

    // Sender: one 20 ms frame every 20 ms, silence when no turn is playing; reports when a turn's
    // speech really ended.
    let (turn_tx, mut turn_rx) = mpsc::channel::<(Vec<i16>, usize, oneshot::Sender<Instant>)>(1);
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let sender = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        let mut playing: VecDeque<Vec<i16>> = VecDeque::new();
        let mut end_frame: Option<(usize, oneshot::Sender<Instant>)> = None;
        let mut sent_in_turn = 0usize;
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                _ = ticker.tick() => {}
            }
            if playing.is_empty()
                && let Ok((samples, end, done)) = turn_rx.try_recv()
            {
                playing = samples
                    .chunks(FRAME)
                    .map(|c| {
                        let mut f = c.to_vec();
                        f.resize(FRAME, 0);
                        f
                    })
                    .collect();
                end_frame = Some((end, done));
                sent_in_turn = 0;
            }
            let frame = playing.pop_front().unwrap_or_else(|| vec![0; FRAME]);
            let bytes: Vec<u8> = frame.iter().flat_map(|s| s.to_le_bytes()).collect();
            let message = json!({"event": "media", "media": {"payload": BASE64.encode(bytes)}});
            if sink.send(Message::text(message.to_string())).await.is_err() {
                return sink;
            }
            sent_in_turn += 1;
            if let Some((end, _)) = &end_frame
                && sent_in_turn >= *end
                && let Some((_, done)) = end_frame.take()
            {
                let _ = done.send(Instant::now());
            }
        }
        let _ = sink
            .send(Message::text(json!({"event": "stop"}).to_string()))
            .await;
        sink
    });

    let timeout = script.turn_timeout;
    wait_until_agent_done(&mut marks_rx, &heard, 1, timeout)
        .await
        .context("the agent's greeting never finished")?;
    let mut report_turns = Vec::new();
    for (index, (label, samples)) in script.turns.iter().enumerate() {
        let end = speech_end_frame(samples);
        let (done_tx, done_rx) = oneshot::channel();
        turn_tx
            .send((samples.clone(), end, done_tx))
            .await
            .map_err(|_| anyhow!("the call's audio stopped"))?;
        let speech_end = done_rx
            .await
            .map_err(|_| anyhow!("the call's audio stopped"))?;
        let _ = media_rx.borrow_and_update();
        let marks_before = *marks_rx.borrow();
        let first_audio = tokio::time::timeout(timeout, async {
            loop {
                if media_rx.changed().await.is_err() {
                    return None;
                }
                if let Some(at) = *media_rx.borrow()
                    && at > speech_end
                {
                    return Some(at);
                }
            }
        })
        .await
        .ok()
        .flatten();
        let answered =
            wait_until_agent_done(&mut marks_rx, &heard, marks_before + 1, timeout).await;
        let t = |at: Instant| at.duration_since(t0).as_secs_f64();
        report_turns.push(json!({
            "turn": index + 1,
            "audio": label,
            "caller_speech_end_s": t(speech_end),
            "first_agent_audio_s": first_audio.map(t),
            "voice_to_voice_s": first_audio.map(|a| a.duration_since(speech_end).as_secs_f64()),
            "answered": first_audio.is_some() && answered.is_ok(),
        }));
    }
    let _ = stop_tx.send(());
    let _ = sender.await;
    let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;

    let (summary, transcript) = if script.fetch_record {
        fetch_record(base, token, &call_id).await?
    } else {
        (None, Value::Null)
    };
    let heard = Arc::try_unwrap(heard)
        .map_err(|_| anyhow!("the reader is still running"))?
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // The server's own breakdown, matched to turns in order.
    for (turn, latency) in report_turns.iter_mut().zip(&heard.latencies) {
        turn["server"] = latency.clone();
    }
    let transcript =
        json!({ "call_id": call_id, "turns": transcript["turns"], "events": heard.events });
    let report = json!({
        "call_id": call_id,
        "server": base,
        "end_reason": heard.hangup,
        "agent_audio_s": heard.agent_audio.len() as f64 / 16_000.0,
        "turns": report_turns,
        "claim": summary.as_ref().map(|s| s["claim"].clone()),
        "synthesis": summary.as_ref().map(|s| s["synthesis"].clone()),
    });
    Ok(CallResult {
        report,
        agent_audio: heard.agent_audio,
        transcript,
    })
}

/// Waits until `marks` agent speeches have ended and the agent then stayed quiet a moment (an answer may
/// follow a filler phrase).
async fn wait_until_agent_done(
    marks_rx: &mut watch::Receiver<u32>,
    heard: &Mutex<Heard>,
    marks: u32,
    timeout: Duration,
) -> anyhow::Result<()> {
    tokio::time::timeout(timeout, async {
        let mut wanted = marks;
        loop {
            while *marks_rx.borrow_and_update() < wanted {
                if marks_rx.changed().await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(AGENT_DONE_QUIET).await;
            let last = heard.lock().map(|h| h.last_media).unwrap_or(None);
            let quiet = last.is_none_or(|at| at.elapsed() >= AGENT_DONE_QUIET);
            if quiet && *marks_rx.borrow() >= wanted {
                return;
            }
            wanted = *marks_rx.borrow() + 1;
        }
    })
    .await
    .map_err(|_| {
        anyhow!(
            "no end of the agent's speech within {} s",
            timeout.as_secs()
        )
    })
}

/// The frame count up to the last frame of speech: the caller's true end of speech, from the audio.
pub(crate) fn speech_end_frame(samples: &[i16]) -> usize {
    let rms: Vec<f64> = samples
        .chunks(FRAME)
        .map(|c| (c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .collect();
    let loudest = rms.iter().copied().fold(0.0, f64::max);
    // 30 dB under the loudest frame is the end of the last word's energy.
    let threshold = (loudest * 0.03).max(50.0);
    rms.iter()
        .rposition(|&r| r > threshold)
        .map_or(rms.len(), |i| i + 1)
}

/// The call's claim and synthesis (written after hang-up, so polled) and its stored transcript.
async fn fetch_record(
    base: &str,
    token: &str,
    call_id: &str,
) -> anyhow::Result<(Option<Value>, Value)> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut summary = None;
    while Instant::now() < deadline {
        let response = http
            .get(format!("{base}/api/v1/calls/{call_id}/summary"))
            .bearer_auth(token)
            .send()
            .await?;
        if response.status().is_success() {
            summary = Some(response.json::<Value>().await?);
            break;
        }
        if response.status() != reqwest::StatusCode::NOT_FOUND {
            bail!("reading the call's summary: {}", response.status());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if summary.is_none() {
        eprintln!("warning: no synthesis after 180 s; report.json has none");
    }
    let transcript = http
        .get(format!("{base}/api/v1/calls/{call_id}/transcript"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json::<Value>()
        .await?;
    Ok((summary, transcript))
}
