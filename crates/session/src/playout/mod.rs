//! Media out: the only place that owns the call's 20 ms clock. It sends one frame per tick, drops the
//! frames of cancelled speech at once (and tells the far side to drop what it has queued), and reports
//! what was actually heard: when each speech became audible and how many of its pieces were played.
//!
//! Every piece (sentence) is followed by a mark on the wire, `speech-{id}.{piece}`, and every speech by
//! `speech-{id}`. When the far side echoes marks once it has played the audio before them (Twilio does),
//! playout trusts the echoes over its own clock: a speech is finished when its end mark comes back, and a
//! barge-in counts as heard only the pieces confirmed plus the one that was playing. A far side that stops
//! echoing is given [`ECHO_GRACE`]; after that the clock decides again for the rest of the call.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use switchboard_audio::FRAME_DURATION;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::echo_tap::EchoTap;
use crate::machine::SpeechId;
use crate::media::Outbound;

mod marks;

use marks::{Echoes, Unconfirmed, heard_when_cut};
pub(crate) use marks::{end_mark, piece_mark};

/// How long a fully sent speech may wait for its end mark's echo before the clock is trusted instead.
/// Audio is sent in real time, so the far side is behind by its jitter buffer and the network only.
pub(crate) const ECHO_GRACE: Duration = Duration::from_secs(2);

/// Audio queued for playing.
#[derive(Debug)]
pub(crate) enum Queued {
    /// One 20 ms frame of a speech's piece (sentence) `piece`.
    Frame {
        speech: SpeechId,
        piece: u32,
        bytes: Vec<u8>,
    },
    /// The speech has no more audio.
    End(SpeechId),
}

/// What playout tells the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Played {
    /// The first frame of a speech was sent.
    Audible { speech: SpeechId, at: Instant },
    /// A speech finished or was cut; `pieces` of its pieces were at least partly heard.
    Finished {
        speech: SpeechId,
        pieces: u32,
        interrupted: bool,
    },
}

/// The speech being played, and how far it got.
#[derive(Debug, Clone, Copy)]
struct Current {
    speech: SpeechId,
    /// Pieces at least partly sent.
    pieces: u32,
}

/// The clock's state: what is playing, what was cut or finished, what the far side confirmed.
struct Playout {
    out_tx: mpsc::Sender<Outbound>,
    played_tx: mpsc::Sender<Played>,
    current: Option<Current>,
    cancelled: BTreeSet<SpeechId>,
    done: BTreeSet<SpeechId>,
    /// Present while the far side's echoes are trusted.
    echoes: Option<Echoes>,
    /// Where each tick's frame goes: the echo canceller's reference, the recording.
    taps: Vec<EchoTap>,
    /// Whether this tick sent a frame.
    sent_this_tick: bool,
}

/// Playout's queues. Everything it tells the session waits for room: the session takes reports as they
/// come and never waits on playout, so the two cannot block each other.
pub(crate) struct Lines {
    /// The agent's audio, in order.
    pub queue_rx: mpsc::Receiver<Queued>,
    /// Speeches to cut, served before audio.
    pub cancel_rx: mpsc::Receiver<SpeechId>,
    /// The far side's mark echoes, straight from the transport.
    pub marks_rx: mpsc::Receiver<String>,
    /// To the transport.
    pub out_tx: mpsc::Sender<Outbound>,
    /// To the session.
    pub played_tx: mpsc::Sender<Played>,
}

/// Runs the clock until `stop`, or until the session or the transport goes away. With `trust_echoes`
/// (a transport whose peer echoes marks once it has played the audio) what was heard is taken from the
/// echoes; otherwise they are read and ignored.
pub(crate) async fn run(
    lines: Lines,
    trust_echoes: bool,
    taps: Vec<EchoTap>,
    stop: CancellationToken,
) {
    let Lines {
        mut queue_rx,
        mut cancel_rx,
        marks_rx,
        out_tx,
        played_tx,
    } = lines;
    let mut marks_rx = Some(marks_rx);
    let mut ticker = tokio::time::interval(FRAME_DURATION);
    // After a stall, send the backlog promptly rather than drifting further behind.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut playout = Playout {
        out_tx,
        played_tx,
        current: None,
        cancelled: BTreeSet::new(),
        done: BTreeSet::new(),
        echoes: trust_echoes.then(Echoes::default),
        taps,
        sent_this_tick: false,
    };
    loop {
        let alive = tokio::select! {
            biased;
            () = stop.cancelled() => {
                playout.stopped().await;
                return;
            }
            Some(speech) = cancel_rx.recv() => playout.cancel(speech).await,
            echo = next_echo(&mut marks_rx) => {
                match echo {
                    Some(name) => playout.echoed(&name).await,
                    None => marks_rx = None,
                }
                true
            }
            _ = ticker.tick() => playout.tick(&mut queue_rx).await,
        };
        if !alive {
            return;
        }
    }
}

/// The next echo, or never when the transport sends none.
async fn next_echo(marks_rx: &mut Option<mpsc::Receiver<String>>) -> Option<String> {
    match marks_rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Playout {
    async fn finished(&self, speech: SpeechId, pieces: u32, interrupted: bool) {
        let finished = Played::Finished {
            speech,
            pieces,
            interrupted,
        };
        let _ = self.played_tx.send(finished).await;
    }

    /// Cuts a speech (barge-in). Returns false when the transport is gone.
    async fn cancel(&mut self, speech: SpeechId) -> bool {
        // Sent in full but perhaps still playing from the far side's buffer.
        if let Some(echoes) = &mut self.echoes
            && let Some(waiting) = echoes.unconfirmed.remove(&speech)
        {
            let pieces = heard_when_cut(waiting.pieces, echoes.confirmed(speech));
            if self.out_tx.send(Outbound::Clear).await.is_err() {
                return false;
            }
            self.finished(speech, pieces, true).await;
            return true;
        }
        if self.done.contains(&speech) || !self.cancelled.insert(speech) {
            return true;
        }
        let pieces = match self.current {
            Some(c) if c.speech == speech => {
                self.current = None;
                if self.out_tx.send(Outbound::Clear).await.is_err() {
                    return false;
                }
                match &self.echoes {
                    Some(echoes) => heard_when_cut(c.pieces, echoes.confirmed(speech)),
                    None => c.pieces,
                }
            }
            _ => 0,
        };
        self.done.insert(speech);
        self.finished(speech, pieces, true).await;
        true
    }

    /// The call is over: the speech being played, and any sent but not confirmed, count as cut where
    /// they got to, so that the record has what the caller heard of them.
    async fn stopped(&mut self) {
        if let Some(c) = self.current.take()
            && !self.done.contains(&c.speech)
        {
            let pieces = match &self.echoes {
                Some(echoes) => heard_when_cut(c.pieces, echoes.confirmed(c.speech)),
                None => c.pieces,
            };
            self.finished(c.speech, pieces, true).await;
        }
        if let Some(echoes) = self.echoes.take() {
            for (speech, waiting) in &echoes.unconfirmed {
                let pieces = heard_when_cut(waiting.pieces, echoes.confirmed(*speech));
                self.finished(*speech, pieces, true).await;
            }
        }
    }

    /// The far side played up to a mark.
    async fn echoed(&mut self, name: &str) {
        let Some(echoes) = &mut self.echoes else {
            tracing::debug!(%name, "the far side played up to a mark");
            return;
        };
        if let Some((speech, pieces)) = echoes.echoed(name) {
            self.finished(speech, pieces, false).await;
        }
    }

    /// One tick of the clock: the next frame, old ids forgotten, overdue echoes given up on. Returns
    /// false when the transport or the session is gone.
    async fn tick(&mut self, queue_rx: &mut mpsc::Receiver<Queued>) -> bool {
        self.sent_this_tick = false;
        if !self.send_next_frame(queue_rx).await {
            return false;
        }
        if !self.sent_this_tick {
            for tap in &self.taps {
                tap.sent(None);
            }
        }
        // Old ids can never come back: keep the sets small on long calls.
        if let Some(&newest) = self.done.iter().next_back() {
            let floor = SpeechId(newest.0.saturating_sub(64));
            self.done = self.done.split_off(&floor);
            self.cancelled = self.cancelled.split_off(&floor);
            if let Some(echoes) = &mut self.echoes {
                echoes.trim(floor);
            }
        }
        if self
            .echoes
            .as_ref()
            .is_some_and(|e| e.overdue(tokio::time::Instant::now()))
        {
            tracing::warn!(
                grace_ms = ECHO_GRACE.as_millis() as u64,
                "the far side stopped echoing marks; our clock times what the caller heard from now on"
            );
            metrics::counter!("switchboard_errors_total", "kind" => "mark_echo").increment(1);
            if let Some(echoes) = self.echoes.take() {
                for (speech, waiting) in echoes.unconfirmed {
                    self.finished(speech, waiting.pieces, false).await;
                }
            }
        }
        true
    }

    /// Sends the next audible frame, handling end markers and skipping cancelled speech on the way.
    async fn send_next_frame(&mut self, queue_rx: &mut mpsc::Receiver<Queued>) -> bool {
        loop {
            let item = match queue_rx.try_recv() {
                Ok(item) => item,
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            };
            match item {
                Queued::Frame { speech, .. } if self.cancelled.contains(&speech) => continue,
                Queued::Frame {
                    speech,
                    piece,
                    bytes,
                } => {
                    let mut ended_piece = None;
                    match &mut self.current {
                        Some(c) if c.speech == speech => {
                            if piece >= c.pieces {
                                ended_piece = c.pieces.checked_sub(1);
                                c.pieces = piece + 1;
                            }
                        }
                        _ => {
                            self.current = Some(Current {
                                speech,
                                pieces: piece + 1,
                            });
                            let audible = Played::Audible {
                                speech,
                                at: Instant::now(),
                            };
                            let _ = self.played_tx.send(audible).await;
                        }
                    }
                    if let Some(ended) = ended_piece
                        && self
                            .out_tx
                            .send(Outbound::Mark(piece_mark(speech, ended)))
                            .await
                            .is_err()
                    {
                        return false;
                    }
                    for tap in &self.taps {
                        tap.sent(Some(&bytes));
                    }
                    self.sent_this_tick = true;
                    return self.out_tx.send(Outbound::Audio(bytes)).await.is_ok();
                }
                Queued::End(speech) => {
                    if self.cancelled.contains(&speech) || !self.done.insert(speech) {
                        continue;
                    }
                    let pieces = match self.current.take() {
                        Some(c) if c.speech == speech => c.pieces,
                        other => {
                            self.current = other;
                            0
                        }
                    };
                    if self
                        .out_tx
                        .send(Outbound::Mark(end_mark(speech)))
                        .await
                        .is_err()
                    {
                        return false;
                    }
                    match &mut self.echoes {
                        Some(echoes) if pieces > 0 => {
                            echoes.unconfirmed.insert(
                                speech,
                                Unconfirmed {
                                    pieces,
                                    sent_at: tokio::time::Instant::now(),
                                },
                            );
                        }
                        _ => self.finished(speech, pieces, false).await,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
