//! What crosses between a transport (the WebSocket, Twilio, AudioSocket, SIP) and a call: caller audio and
//! signals in, agent audio, marks, transcripts and reports out. Transports translate their wire format to
//! and from these; the call never sees a wire format.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use switchboard_audio::InputFormat;
use switchboard_core::Speaker;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::latency::TurnLatency;
use crate::machine::EndReason;

/// From the transport to the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Caller audio in the call's wire format.
    Audio(Vec<u8>),
    /// A key pressed on the caller's phone.
    Dtmf(char),
    /// The far side has played everything before this mark (its name as sent in [`Outbound::Mark`]).
    Mark(String),
    /// The caller hung up or the stream stopped.
    Hangup,
}

/// Signals (marks, keys, the hang-up) a call may have waiting: the far side sends a few a second.
const SIGNAL_BACKLOG: usize = 64;
/// How long a signal waits for room. A call serves signals first, so a queue full this long means a
/// peer flooding them (or a call stuck); the signal is then refused and counted rather than stalling the
/// transport, which also carries the call's output.
const SIGNAL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The way from a transport into its call, in three queues: caller audio, bounded, dropping the oldest
/// frame when the call has fallen behind (the newest audio is what matters, and each drop is counted);
/// signals (keys, the hang-up), served before audio; and mark echoes, which go straight to playout. Neither
/// signals nor marks are dropped for lack of room (the transport waits, up to [`SIGNAL_WAIT`]), so that a
/// mark or a hang-up is never lost behind a backlog of audio.
pub fn caller_channel(audio_frames: usize) -> (CallerSender, CallerReceiver) {
    let audio = Arc::new(AudioQueue {
        frames: Mutex::new(VecDeque::with_capacity(audio_frames.min(1_024))),
        capacity: audio_frames.max(1),
        ready: Notify::new(),
        closed: AtomicBool::new(false),
        dropped: AtomicU64::new(0),
    });
    let (signals_tx, signals) = mpsc::channel(SIGNAL_BACKLOG);
    let (marks_tx, marks) = mpsc::channel(SIGNAL_BACKLOG);
    (
        CallerSender {
            audio: audio.clone(),
            signals: signals_tx,
            marks: marks_tx,
        },
        CallerReceiver {
            audio: CallerAudio(audio),
            signals,
            marks,
        },
    )
}

#[derive(Debug)]
struct AudioQueue {
    frames: Mutex<VecDeque<CallerFrame>>,
    capacity: usize,
    ready: Notify,
    closed: AtomicBool,
    dropped: AtomicU64,
}

impl AudioQueue {
    fn frames(&self) -> std::sync::MutexGuard<'_, VecDeque<CallerFrame>> {
        // Frames only: a panic while holding the lock leaves nothing inconsistent.
        self.frames.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The transport's end of [`caller_channel`].
#[derive(Debug)]
pub struct CallerSender {
    audio: Arc<AudioQueue>,
    signals: mpsc::Sender<Inbound>,
    marks: mpsc::Sender<String>,
}

/// The call is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the call has ended")]
pub struct CallGone;

impl CallerSender {
    /// Hands caller audio or a signal to the call. Audio never waits; a signal waits for room.
    pub async fn send(&self, inbound: Inbound) -> Result<(), CallGone> {
        match inbound {
            Inbound::Audio(frame) => {
                if self.signals.is_closed() {
                    return Err(CallGone);
                }
                let mut frames = self.audio.frames();
                if frames.len() >= self.audio.capacity {
                    frames.pop_front();
                    self.audio.dropped.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("switchboard_caller_audio_dropped_total").increment(1);
                }
                frames.push_back(CallerFrame {
                    bytes: frame,
                    arrived: Instant::now(),
                });
                drop(frames);
                self.audio.ready.notify_one();
                Ok(())
            }
            Inbound::Mark(name) => {
                match tokio::time::timeout(SIGNAL_WAIT, self.marks.send(name)).await {
                    Ok(sent) => sent.map_err(|_| CallGone),
                    Err(_) => {
                        flooded("mark");
                        Ok(())
                    }
                }
            }
            signal => match tokio::time::timeout(SIGNAL_WAIT, self.signals.send(signal)).await {
                Ok(sent) => sent.map_err(|_| CallGone),
                Err(_) => {
                    flooded("signal");
                    Ok(())
                }
            },
        }
    }

    /// Sends a signal if there is room now, without waiting (for a transport going away).
    pub fn try_signal(&self, signal: Inbound) -> bool {
        self.signals.try_send(signal).is_ok()
    }

    /// Audio frames dropped so far because the call had fallen behind.
    pub fn dropped_audio(&self) -> u64 {
        self.audio.dropped.load(Ordering::Relaxed)
    }
}

/// A signal or mark refused after [`SIGNAL_WAIT`]: a peer flooding them, or a call stuck.
fn flooded(what: &'static str) {
    tracing::warn!(
        what,
        backlog = SIGNAL_BACKLOG,
        "refused: the call has not taken one for 2 s"
    );
    metrics::counter!("switchboard_errors_total", "kind" => "signal_flood").increment(1);
}

impl Drop for CallerSender {
    fn drop(&mut self) {
        self.audio.closed.store(true, Ordering::Relaxed);
        self.audio.ready.notify_one();
    }
}

/// The call's end of [`caller_channel`].
#[derive(Debug)]
pub struct CallerReceiver {
    audio: CallerAudio,
    signals: mpsc::Receiver<Inbound>,
    marks: mpsc::Receiver<String>,
}

/// The queues of a [`CallerReceiver`], apart: each `None` from `recv` once the transport is gone.
#[derive(Debug)]
pub struct CallerParts {
    /// Caller audio, for the listener.
    pub audio: CallerAudio,
    /// Keys and the hang-up, for the session loop: never [`Inbound::Audio`] or [`Inbound::Mark`].
    pub signals: mpsc::Receiver<Inbound>,
    /// The far side's mark echoes, for playout.
    pub marks: mpsc::Receiver<String>,
}

impl CallerReceiver {
    /// Its queues, to be served by different parts of the call.
    pub fn into_parts(self) -> CallerParts {
        CallerParts {
            audio: self.audio,
            signals: self.signals,
            marks: self.marks,
        }
    }
}

/// The audio queue of [`CallerReceiver`].
#[derive(Debug)]
pub struct CallerAudio(Arc<AudioQueue>);

/// A frame of caller audio, with when the transport handed it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerFrame {
    /// The audio in the call's wire format.
    pub bytes: Vec<u8>,
    /// When it reached the call's queue: the echo canceller pairs it with the agent's audio sent up to
    /// then, however long the call took to get to it.
    pub arrived: Instant,
}

impl CallerAudio {
    /// The next frame of caller audio; `None` once the transport is gone and every frame was taken.
    pub async fn next(&self) -> Option<CallerFrame> {
        loop {
            if let Some(frame) = self.0.frames().pop_front() {
                return Some(frame);
            }
            if self.0.closed.load(Ordering::Relaxed) {
                return None;
            }
            // A frame pushed after the check above has stored a permit: no wake-up is lost.
            self.0.ready.notified().await;
        }
    }
}

/// From the call to the transport.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// 20 ms of agent audio in the call's wire format.
    Audio(Vec<u8>),
    /// Everything before this point has been sent: `speech-{n}.{piece}` after each piece (sentence) of
    /// a speech, `speech-{n}` after the whole speech. A peer that plays audio echoes it back once played.
    Mark(String),
    /// Drop any agent audio queued on the far side (barge-in).
    Clear,
    /// A line of the transcript (the caller's partials are not final).
    Transcript(TranscriptLine),
    /// How long a turn's answer took, and where the time went.
    Latency(TurnLatency),
    /// What the echo canceller did on this call, sent once, before the agent hangs up.
    Echo(EchoReport),
    /// The call is over.
    Hangup {
        /// Why; `EndReason::as_str` is its word on the wire and in the database.
        reason: EndReason,
    },
}

/// What the echo canceller did on a call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EchoReport {
    /// Echo return loss enhancement over the call (dB): how much of what came back on the line while only
    /// the agent talked was removed. `None` with under a second of such audio.
    pub erle_db: Option<f64>,
    /// The echo path's delay the canceller found, ms.
    pub delay_ms: u32,
    /// The longest echo path delay it found during the call, ms.
    pub longest_delay_ms: u32,
    /// Times the delay it found moved (the line's buffers deepened or drained); each move starts its
    /// filter afresh.
    pub delay_moves: u64,
    /// The line was judged to return no echo (nothing suppressed).
    pub no_echo: bool,
    /// Audio with only the agent talking and something on the line, ms.
    pub echo_ms: u64,
    /// Times the agent's and the caller's audio drifted apart and were lined up again (each time, the
    /// canceller searches for the echo's delay afresh).
    pub realigned: u64,
}

/// A transcript event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranscriptLine {
    /// Who spoke.
    pub speaker: Speaker,
    /// What was said (the agent: what was played).
    pub text: String,
    /// False for a partial that may still change.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Its position in the stored transcript, once stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

/// Samples of one 20 ms frame of `format` and its size on the wire in bytes.
pub fn frame_bytes(format: InputFormat) -> usize {
    match format {
        InputFormat::Ulaw8k | InputFormat::Alaw8k => 160,
        InputFormat::Pcm16(rate) => rate.frame_samples() * 2,
    }
}

/// The duration `bytes` of `format` audio lasts.
pub fn audio_duration(format: InputFormat, bytes: usize) -> Duration {
    let samples = match format {
        InputFormat::Ulaw8k | InputFormat::Alaw8k => bytes,
        InputFormat::Pcm16(_) => bytes / 2,
    };
    format.rate().duration_of(samples as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn audio_drops_its_oldest_frames_when_full_and_signals_are_never_dropped() {
        let (tx, rx) = caller_channel(3);
        for i in 0..5u8 {
            tx.send(Inbound::Audio(vec![i])).await.unwrap();
        }
        for name in ["a", "b"] {
            tx.send(Inbound::Mark(name.into())).await.unwrap();
        }
        tx.send(Inbound::Dtmf('5')).await.unwrap();
        assert_eq!(tx.dropped_audio(), 2);
        let CallerParts {
            audio,
            mut signals,
            mut marks,
        } = rx.into_parts();
        for i in 2..5u8 {
            assert_eq!(
                audio.next().await.map(|f| f.bytes),
                Some(vec![i]),
                "the newest frames are kept"
            );
        }
        // Marks go their own way, to playout; keys to the session.
        assert_eq!(marks.recv().await.as_deref(), Some("a"));
        assert_eq!(marks.recv().await.as_deref(), Some("b"));
        assert_eq!(signals.recv().await, Some(Inbound::Dtmf('5')));
        // A frame sent while the call waits wakes it.
        let waiting = tokio::spawn(async move { (audio.next().await.map(|f| f.bytes), audio) });
        tokio::task::yield_now().await;
        tx.send(Inbound::Audio(vec![9])).await.unwrap();
        let (frame, audio) = waiting.await.unwrap();
        assert_eq!(frame, Some(vec![9]));
        // The transport goes: what was queued is still delivered, then the end.
        tx.send(Inbound::Audio(vec![10])).await.unwrap();
        drop(tx);
        assert_eq!(audio.next().await.map(|f| f.bytes), Some(vec![10]));
        assert_eq!(audio.next().await, None);
        assert_eq!(signals.recv().await, None);
        assert_eq!(marks.recv().await, None);
    }
}
