//! The call's recording (RECORDING): both sides, the caller on the left and the agent on the right, at the
//! line's rate, stored sealed in chunks of a second while the call goes on, so that a call cut off
//! leaves what was recorded up to then.
//!
//! The caller's side is what the line sent, decoded; the agent's is what playout sent, a tick at a time
//! (nothing sent is a tick of silence), so the two stay in step by sample count as the echo canceller's
//! reference does. A side that stops (the caller's audio paused, playout stalled) is padded with silence
//! once the other is [`MAX_SKEW_S`] ahead. A caller who declines (RECORDING=announce) stops the recording
//! and has what was stored deleted; the writer runs off the call's loop and a database that is slow costs
//! the recording time, not the call.

use std::time::Duration;

use switchboard_audio::InputFormat;
use switchboard_audio::g711::{alaw_decode, ulaw_decode};
use switchboard_core::CallId;
use switchboard_store::Database;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::echo_tap::EchoTap;

/// Caller payloads that may wait for the writer (about 20 s of 20 ms frames).
const BACKLOG: usize = 1_000;
/// How often the writer takes the agent's side from playout.
const TAKE_EVERY: Duration = Duration::from_millis(100);
/// How far one side may run ahead before the other is padded with silence.
const MAX_SKEW_S: usize = 2;
/// Tries of one chunk's write before it is counted lost.
const WRITE_TRIES: u32 = 3;
/// How long the end of the call waits for the last chunks.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

enum Piece {
    Caller(Vec<i16>),
    Declined,
}

/// The session's handle on its recording.
pub(crate) struct CallRecording {
    pieces: Option<mpsc::Sender<Piece>>,
    writer: Option<JoinHandle<()>>,
    format: InputFormat,
    declined: bool,
}

impl std::fmt::Debug for CallRecording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRecording")
            .field("declined", &self.declined)
            .finish_non_exhaustive()
    }
}

/// Samples of a payload in the call's format, at its rate.
fn decode(format: InputFormat, bytes: &[u8]) -> Vec<i16> {
    match format {
        InputFormat::Ulaw8k => bytes.iter().map(|&b| ulaw_decode(b)).collect(),
        InputFormat::Alaw8k => bytes.iter().map(|&b| alaw_decode(b)).collect(),
        InputFormat::Pcm16(_) => bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect(),
    }
}

/// Whether the caller says they do not want the call recorded.
pub(crate) fn declines(text: &str) -> bool {
    let text = text.to_lowercase().replace(['\'', '’'], "");
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    const REFUSALS: [&str; 7] = ["dont", "not", "no", "stop", "without", "object", "refuse"];
    // A refusal in the five words before a word about recording ("I don't want this call recorded").
    words.iter().enumerate().any(|(i, word)| {
        word.starts_with("record")
            && words[i.saturating_sub(5)..i]
                .iter()
                .any(|w| REFUSALS.contains(w))
    })
}

impl CallRecording {
    /// Starts recording `call`: the caller's payloads come through [`CallRecording::caller`], the agent's
    /// side from `agent`, which playout feeds.
    pub(crate) fn start(call: CallId, db: Database, format: InputFormat, agent: EchoTap) -> Self {
        let (pieces, rx) = mpsc::channel(BACKLOG);
        let writer = tokio::spawn(write(call, db, format, rx, agent).in_current_span());
        Self {
            pieces: Some(pieces),
            writer: Some(writer),
            format,
            declined: false,
        }
    }

    /// The caller's audio as the line sent it.
    pub(crate) fn caller(&self, bytes: &[u8]) {
        let Some(pieces) = &self.pieces else { return };
        if pieces
            .try_send(Piece::Caller(decode(self.format, bytes)))
            .is_err()
        {
            metrics::counter!("switchboard_recording_audio_dropped_total").increment(1);
        }
    }

    /// The caller declined: nothing more is recorded and what was stored is deleted.
    pub(crate) fn decline(&mut self) {
        if self.declined {
            return;
        }
        self.declined = true;
        tracing::info!("the caller declined the recording; it is stopped and deleted");
        metrics::counter!("switchboard_recordings_declined_total").increment(1);
        if let Some(pieces) = self.pieces.take() {
            // After the audio already queued: the writer stores nothing more, then deletes it all.
            tokio::spawn(
                async move {
                    let _ = pieces.send(Piece::Declined).await;
                }
                .in_current_span(),
            );
        }
    }

    /// Whether the caller declined.
    pub(crate) fn declined(&self) -> bool {
        self.declined
    }

    /// The call ended: the last chunks are stored (for at most [`CLOSE_WAIT`]).
    pub(crate) async fn finish(&mut self) {
        self.pieces = None;
        if let Some(mut writer) = self.writer.take()
            && tokio::time::timeout(CLOSE_WAIT, &mut writer).await.is_err()
        {
            writer.abort();
            tracing::error!("the recording's last chunks were not stored in time");
        }
    }
}

/// Joins the two sides and stores them a chunk at a time.
async fn write(
    call: CallId,
    db: Database,
    format: InputFormat,
    mut pieces: mpsc::Receiver<Piece>,
    agent: EchoTap,
) {
    let rate = format.rate().hz() as usize;
    let tick = rate / 50;
    let mut sides = Sides::default();
    let mut seq = 0i64;
    let mut every = tokio::time::interval(TAKE_EVERY);
    loop {
        let open = tokio::select! {
            piece = pieces.recv() => match piece {
                Some(Piece::Caller(samples)) => {
                    sides.caller.extend(samples);
                    true
                }
                Some(Piece::Declined) => {
                    match db.delete_recording(call).await {
                        Ok(chunks) => tracing::info!(chunks, "the recording was deleted"),
                        Err(e) => tracing::error!(error = %e, "cannot delete the declined recording"),
                    }
                    return;
                }
                None => false,
            },
            _ = every.tick() => true,
        };
        for sent in agent.take() {
            match sent {
                Some(frame) => sides.agent.extend(decode(format, &frame)),
                None => sides.agent.extend(std::iter::repeat_n(0, tick)),
            }
        }
        sides.keep_in_step(rate * MAX_SKEW_S);
        while let Some(chunk) = sides.chunk(rate, !open) {
            store(&db, call, seq, rate as u32, &chunk).await;
            seq += 1;
        }
        if !open {
            return;
        }
    }
}

/// The two sides not yet stored.
#[derive(Debug, Default)]
struct Sides {
    caller: Vec<i16>,
    agent: Vec<i16>,
}

impl Sides {
    /// Pads the side that fell more than `skew` samples behind.
    fn keep_in_step(&mut self, skew: usize) {
        let (caller, agent) = (self.caller.len(), self.agent.len());
        if caller > agent + skew {
            self.agent.resize(caller - skew / 2, 0);
        } else if agent > caller + skew {
            self.caller.resize(agent - skew / 2, 0);
        }
    }

    /// The next `len` samples of both sides interleaved; at the end (`last`), whatever is left, the
    /// shorter side padded.
    fn chunk(&mut self, len: usize, last: bool) -> Option<Vec<i16>> {
        let ready = self.caller.len().min(self.agent.len());
        let take = if ready >= len {
            len
        } else if last && self.caller.len().max(self.agent.len()) > 0 {
            let longest = self.caller.len().max(self.agent.len()).min(len);
            self.caller.resize(self.caller.len().max(longest), 0);
            self.agent.resize(self.agent.len().max(longest), 0);
            longest
        } else {
            return None;
        };
        let caller: Vec<i16> = self.caller.drain(..take).collect();
        let agent: Vec<i16> = self.agent.drain(..take).collect();
        Some(
            caller
                .into_iter()
                .zip(agent)
                .flat_map(|(left, right)| [left, right])
                .collect(),
        )
    }
}

async fn store(db: &Database, call: CallId, seq: i64, rate: u32, samples: &[i16]) {
    let mut pause = Duration::from_millis(200);
    for attempt in 1..=WRITE_TRIES {
        match db.store_recording_chunk(call, seq, rate, samples).await {
            Ok(()) => return,
            Err(e) if attempt == WRITE_TRIES => {
                tracing::error!(error = %e, seq, "a second of the recording is lost");
                metrics::counter!("switchboard_recording_chunks_lost_total").increment(1);
            }
            Err(e) => {
                tracing::warn!(error = %e, seq, "storing a recording chunk failed; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_declining_is_heard_and_other_lines_about_records_are_not() {
        for said in [
            "I don't want this call recorded.",
            "Please do not record me",
            "No recording please",
            "Stop the recording.",
            "I object to being recorded",
        ] {
            assert!(declines(said), "{said}");
        }
        for said in [
            "I have a record of the accident",
            "You can record my number as the callback",
            "Don't worry about it",
            "I'm not sure",
            "The police record shows I was not at fault",
        ] {
            assert!(!declines(said), "{said}");
        }
    }

    #[test]
    fn the_sides_are_interleaved_in_step_and_a_stalled_side_is_padded() {
        let mut sides = Sides::default();
        sides.caller.extend([1, 2, 3, 4]);
        sides.agent.extend([-1, -2]);
        assert_eq!(sides.chunk(2, false), Some(vec![1, -1, 2, -2]));
        assert_eq!(
            sides.chunk(2, false),
            None,
            "the agent's side is not there yet"
        );
        assert_eq!(sides.chunk(2, true), Some(vec![3, 0, 4, 0]), "the end pads");
        // Playout stalled for longer than the skew: its side is filled with silence.
        sides.caller.extend(std::iter::repeat_n(7, 100));
        sides.keep_in_step(40);
        assert_eq!(sides.agent.len(), 80);
        assert!(sides.agent.iter().all(|&s| s == 0));
    }
}
