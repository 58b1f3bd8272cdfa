//! A scripted caller, for `switchboard call` and `switchboard bench latency`: it places a call over one
//! of the transports of [`crate::wire`] (`/ws/audio`, Twilio Media Streams, AudioSocket), plays each turn
//! in real time (silence in between, as a phone line would), waits for the agent's answer, and reports
//! per turn when the caller stopped speaking (from the audio
//! itself), when the agent's first audio came back, and the server's breakdown of that latency.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use switchboard_audio::SampleRate;
use switchboard_audio::corpus::resample_all;
use tokio::sync::{mpsc, oneshot, watch};

use crate::wire::{self, Line, Transport, WireEvent};

/// 20 ms at 16 kHz: the frames speech ends are counted in.
const FRAME: usize = 320;
/// The caller sends one frame per tick.
const TICK: Duration = Duration::from_millis(20);

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
    /// The wire format the call goes over.
    pub(crate) transport: Transport,
    /// The agent's audio the caller's line sends back, as a speakerphone or a 2-wire hybrid would.
    pub(crate) echo_return: Option<EchoReturn>,
}

/// How loud and how late the agent's own audio comes back on the caller's line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EchoReturn {
    /// Level of the echo against what the caller heard, dB (negative).
    pub(crate) db: f32,
    /// Delay from hearing a sample to sending it back.
    pub(crate) delay: Duration,
}

impl std::str::FromStr for EchoReturn {
    type Err = String;

    /// `DB,MS`: `-6,120` is the agent's audio 6 dB down, 120 ms late.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (db, ms) = s
            .split_once(',')
            .ok_or_else(|| format!("expected DB,MS (like -6,120), got {s:?}"))?;
        let db: f32 = db
            .trim()
            .parse()
            .map_err(|_| format!("{db:?} is not a level in dB"))?;
        let ms: u64 = ms
            .trim()
            .parse()
            .map_err(|_| format!("{ms:?} is not a delay in whole milliseconds"))?;
        if !(-60.0..=0.0).contains(&db) {
            return Err(format!(
                "the echo's level must be from -60 to 0 dB, not {db}"
            ));
        }
        if ms > 1_000 {
            return Err(format!(
                "the echo's delay must be at most 1000 ms, not {ms}"
            ));
        }
        Ok(Self {
            db,
            delay: Duration::from_millis(ms),
        })
    }
}

/// The caller's line returning the agent's audio: what the caller heard is sent back `delay` later,
/// scaled, mixed into what the caller says. Sample for sample while the agent talks; each new stretch of
/// the agent's audio starts `delay` after it arrived.
struct EchoLine {
    gain: f32,
    delay: Duration,
    pending: VecDeque<i16>,
    /// When the next sample in `pending` goes back on the line.
    due: Option<Instant>,
}

impl EchoLine {
    fn new(echo: EchoReturn) -> Self {
        Self {
            gain: 10f32.powf(echo.db / 20.0),
            delay: echo.delay,
            pending: VecDeque::new(),
            due: None,
        }
    }

    fn heard(&mut self, samples: &[i16], now: Instant) {
        if self.pending.is_empty() && self.due.is_none() {
            self.due = Some(now + self.delay);
        }
        self.pending.extend(samples);
    }

    /// Mixes the echo due by `now` into the caller's next frame (`tick` long).
    fn mix(&mut self, frame: &mut [i16], now: Instant, tick: Duration) {
        let Some(due) = self.due else {
            return;
        };
        if now < due {
            return;
        }
        for s in frame.iter_mut() {
            let Some(e) = self.pending.pop_front() else {
                break;
            };
            *s = (f32::from(*s) + self.gain * f32::from(e))
                .round()
                .clamp(-32_768.0, 32_767.0) as i16;
        }
        self.due = (!self.pending.is_empty()).then_some(due + tick);
    }
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

/// What the caller heard, with times relative to the connection.
#[derive(Default)]
struct Heard {
    /// At the line's rate.
    agent_audio: Vec<i16>,
    last_media: Option<Instant>,
    events: Vec<Value>,
    latencies: Vec<Value>,
    hangup: Option<String>,
}

/// Where the caller's view of the call goes: the shared record and the watchers the turn loop waits on.
#[derive(Clone)]
struct Listener {
    heard: Arc<Mutex<Heard>>,
    marks: watch::Sender<u32>,
    media: watch::Sender<Option<Instant>>,
    /// Marks Twilio's side must echo.
    echoes: mpsc::UnboundedSender<String>,
    /// The agent's audio on its way back, when the line returns it.
    echo_line: Option<Arc<Mutex<EchoLine>>>,
    t0: Instant,
}

impl Listener {
    fn hear(&self, event: WireEvent) {
        let now = Instant::now();
        let mut heard = self
            .heard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let logged = match event {
            WireEvent::AgentAudio(samples) => {
                if let Some(line) = &self.echo_line {
                    line.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .heard(&samples, now);
                }
                heard.agent_audio.extend(samples);
                heard.last_media = Some(now);
                let _ = self.media.send(Some(now));
                None
            }
            WireEvent::EchoMark(name) => {
                let _ = self.echoes.send(name);
                None
            }
            WireEvent::Mark => {
                self.marks.send_modify(|n| *n += 1);
                Some(json!({"event": "mark"}))
            }
            WireEvent::Latency(event) => {
                heard.latencies.push(event.clone());
                Some(event)
            }
            WireEvent::Hangup(reason) => {
                heard.hangup = reason.clone();
                Some(json!({"event": "hangup", "reason": reason}))
            }
            WireEvent::Other(event) => Some(event),
        };
        if let Some(mut logged) = logged {
            logged["t"] = json!(now.duration_since(self.t0).as_secs_f64());
            heard.events.push(logged);
        }
    }
}

/// Places one scripted call on the server at `base` and plays it through.
pub(crate) async fn place_call(
    base: &str,
    token: &str,
    script: &Script,
) -> anyhow::Result<CallResult> {
    let Line {
        call_id,
        rate,
        mut outgoing,
        mut incoming,
        events_on_api,
    } = wire::open(base, token, &script.from, script.source, &script.transport).await?;
    let t0 = Instant::now();
    let frame_samples = rate.frame_samples();

    // Readers: the agent's audio from the wire; marks, transcript, latency and hang-up from the wire or,
    // when the wire does not carry them, from the call's live events.
    let heard = Arc::new(Mutex::new(Heard::default()));
    let (marks_tx, mut marks_rx) = watch::channel(0u32);
    let (media_tx, mut media_rx) = watch::channel(None::<Instant>);
    let (echo_tx, mut echo_rx) = mpsc::unbounded_channel::<String>();
    let echo_line = script
        .echo_return
        .map(|echo| Arc::new(Mutex::new(EchoLine::new(echo))));
    let listener = Listener {
        heard: heard.clone(),
        marks: marks_tx,
        media: media_tx,
        echoes: echo_tx,
        echo_line: echo_line.clone(),
        t0,
    };
    let reader = {
        let listener = listener.clone();
        tokio::spawn(async move {
            while let Some(event) = incoming.next().await {
                listener.hear(event);
            }
        })
    };
    let follower = events_on_api.then(|| {
        let (base, token, call_id) = (base.to_owned(), token.to_owned(), call_id.clone());
        let listener = listener.clone();
        tokio::spawn(async move {
            let (events_tx, mut events_rx) = mpsc::unbounded_channel();
            let follow = tokio::spawn(async move {
                wire::follow_events(&base, &token, &call_id, events_tx).await
            });
            while let Some(event) = events_rx.recv().await {
                listener.hear(event);
            }
            follow.await.map_err(anyhow::Error::from).and_then(|r| r)
        })
    });
    drop(listener);

    // Sender: one 20 ms frame every 20 ms, silence when no turn is playing; reports when a turn's
    // speech really ended.
    let (turn_tx, mut turn_rx) = mpsc::channel::<(Vec<i16>, usize, oneshot::Sender<Instant>)>(1);
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let sender = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(TICK);
        let mut playing: VecDeque<Vec<i16>> = VecDeque::new();
        let mut end_frame: Option<(usize, oneshot::Sender<Instant>)> = None;
        let mut sent_in_turn = 0usize;
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                Some(name) = echo_rx.recv() => {
                    if outgoing.echo_mark(&name).await.is_err() {
                        return;
                    }
                    continue;
                }
                _ = ticker.tick() => {}
            }
            if playing.is_empty()
                && let Ok((samples, end, done)) = turn_rx.try_recv()
            {
                playing = samples
                    .chunks(frame_samples)
                    .map(|c| {
                        let mut f = c.to_vec();
                        f.resize(frame_samples, 0);
                        f
                    })
                    .collect();
                end_frame = Some((end, done));
                sent_in_turn = 0;
            }
            let mut frame = playing
                .pop_front()
                .unwrap_or_else(|| vec![0; frame_samples]);
            if let Some(line) = &echo_line {
                line.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .mix(&mut frame, Instant::now(), TICK);
            }
            if outgoing.frame(&frame).await.is_err() {
                return;
            }
            sent_in_turn += 1;
            if let Some((end, _)) = &end_frame
                && sent_in_turn >= *end
                && let Some((_, done)) = end_frame.take()
            {
                let _ = done.send(Instant::now());
            }
        }
        outgoing.hang_up().await;
    });

    let timeout = script.turn_timeout;
    wait_until_agent_done(&mut marks_rx, &heard, 1, timeout)
        .await
        .context("the agent's greeting never finished")?;
    let mut report_turns = Vec::new();
    for (index, (label, samples)) in script.turns.iter().enumerate() {
        let end = speech_end_frame(samples);
        let samples = resample_all(samples, SampleRate::Hz16000, rate)?;
        let (done_tx, done_rx) = oneshot::channel();
        turn_tx
            .send((samples, end, done_tx))
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
    if let Some(follower) = follower {
        // The hang-up is the call's last event; the stream itself stays open until the call's record is
        // written.
        let deadline = Instant::now() + Duration::from_secs(5);
        while heard.lock().is_ok_and(|h| h.hangup.is_none()) && Instant::now() < deadline {
            if follower.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if follower.is_finished() {
            if let Ok(Err(e)) = follower.await {
                eprintln!("warning: {e:#}");
            }
        } else {
            follower.abort();
        }
    }

    let (summary, transcript) = if script.fetch_record {
        fetch_record(base, token, &call_id).await?
    } else {
        (None, Value::Null)
    };
    let heard = Arc::try_unwrap(heard)
        .map_err(|_| anyhow!("the reader is still running"))?
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let agent_audio = resample_all(&heard.agent_audio, rate, SampleRate::Hz16000)?;
    // The server's own breakdown, matched to turns in order.
    for (turn, latency) in report_turns.iter_mut().zip(&heard.latencies) {
        turn["server"] = latency.clone();
    }
    let transcript =
        json!({ "call_id": call_id, "turns": transcript["turns"], "events": heard.events });
    // What the server's echo canceller reports, against what this line returned.
    let echo = heard.events.iter().find(|e| e["event"] == "echo").map(|e| {
        let mut e = e.clone();
        if let Some(e) = e.as_object_mut() {
            e.remove("event");
            e.remove("t");
        }
        e
    });
    let report = json!({
        "call_id": call_id,
        "server": base,
        "transport": script.transport.name(),
        "end_reason": heard.hangup,
        "echo_return": script.echo_return.map(|e| json!({"db": e.db, "delay_ms": e.delay.as_millis() as u64})),
        "echo": echo,
        "agent_audio_s": agent_audio.len() as f64 / 16_000.0,
        "turns": report_turns,
        "claim": summary.as_ref().map(|s| s["claim"].clone()),
        "synthesis": summary.as_ref().map(|s| s["synthesis"].clone()),
    });
    Ok(CallResult {
        report,
        agent_audio,
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
    let http = crate::client_tls::http();
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
