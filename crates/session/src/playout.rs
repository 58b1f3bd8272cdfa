//! Media out: the only place that owns the call's 20 ms clock. It sends one frame per tick, drops the
//! frames of cancelled speech at once (and tells the far side to drop what it has queued), and reports
//! what was actually heard: when each speech became audible and how many of its pieces were played.
//!
//! Every piece (sentence) is followed by a mark on the wire, `speech-{id}.{piece}`, and every speech by
//! `speech-{id}`. When the far side echoes marks once it has played the audio before them (Twilio does),
//! playout trusts the echoes over its own clock: a speech is finished when its end mark comes back, and a
//! barge-in counts as heard only the pieces confirmed plus the one that was playing. A far side that stops
//! echoing is given [`ECHO_GRACE`]; after that the clock decides again for the rest of the call.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use switchboard_audio::FRAME_DURATION;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::echo_tap::EchoTap;
use crate::machine::SpeechId;
use crate::media::Outbound;

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

/// The mark sent after piece `piece` of `speech`.
pub(crate) fn piece_mark(speech: SpeechId, piece: u32) -> String {
    format!("speech-{}.{piece}", speech.0)
}

/// The mark sent after the whole of `speech`.
pub(crate) fn end_mark(speech: SpeechId) -> String {
    format!("speech-{}", speech.0)
}

/// What an echoed mark confirms: the speech, and the pieces played (`None`: all of them).
fn parse_mark(name: &str) -> Option<(SpeechId, Option<u32>)> {
    let rest = name.strip_prefix("speech-")?;
    match rest.split_once('.') {
        Some((speech, piece)) => Some((
            SpeechId(speech.parse().ok()?),
            Some(piece.parse::<u32>().ok()?.checked_add(1)?),
        )),
        None => Some((SpeechId(rest.parse().ok()?), None)),
    }
}

/// The pieces a cut speech counts as heard: those the far side confirmed, and the one it was playing.
fn heard_when_cut(sent: u32, confirmed: u32) -> u32 {
    sent.min(confirmed.saturating_add(1))
}

/// The speech being played, and how far it got.
#[derive(Debug, Clone, Copy)]
struct Current {
    speech: SpeechId,
    /// Pieces at least partly sent.
    pieces: u32,
}

/// A speech sent in full whose end the far side has not confirmed yet.
#[derive(Debug, Clone, Copy)]
struct Unconfirmed {
    pieces: u32,
    /// On tokio's clock, which tests can pause.
    sent_at: tokio::time::Instant,
}

/// What the far side's mark echoes have confirmed.
#[derive(Debug, Default)]
struct Echoes {
    /// Pieces confirmed per speech.
    confirmed: BTreeMap<SpeechId, u32>,
    unconfirmed: BTreeMap<SpeechId, Unconfirmed>,
}

impl Echoes {
    fn confirmed(&self, speech: SpeechId) -> u32 {
        self.confirmed.get(&speech).copied().unwrap_or(0)
    }

    /// Records an echo; returns the speech it completes, with its pieces.
    fn echoed(&mut self, name: &str) -> Option<(SpeechId, u32)> {
        let Some((speech, pieces)) = parse_mark(name) else {
            tracing::debug!(%name, "ignoring an echo of a mark we did not send");
            return None;
        };
        let confirmed = self.confirmed.entry(speech).or_insert(0);
        *confirmed = (*confirmed).max(pieces.unwrap_or(u32::MAX));
        let pieces = self.unconfirmed.get(&speech)?.pieces;
        if *confirmed < pieces {
            return None;
        }
        self.unconfirmed.remove(&speech);
        Some((speech, pieces))
    }

    /// Whether a fully sent speech has waited for its echo longer than [`ECHO_GRACE`].
    fn overdue(&self, now: tokio::time::Instant) -> bool {
        self.unconfirmed
            .values()
            .any(|u| now.saturating_duration_since(u.sent_at) >= ECHO_GRACE)
    }

    /// Forgets speeches older than `floor`.
    fn trim(&mut self, floor: SpeechId) {
        self.confirmed = self.confirmed.split_off(&floor);
    }
}

/// The clock's state: what is playing, what was cut or finished, what the far side confirmed.
struct Playout {
    out_tx: mpsc::Sender<Outbound>,
    played_tx: mpsc::UnboundedSender<Played>,
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

/// Runs the clock until `stop`, or until the session or the transport goes away. `echo_rx` carries the
/// far side's mark echoes, for a transport whose peer sends them once it has played the audio.
pub(crate) async fn run(
    mut queue_rx: mpsc::Receiver<Queued>,
    mut cancel_rx: mpsc::UnboundedReceiver<SpeechId>,
    out_tx: mpsc::Sender<Outbound>,
    played_tx: mpsc::UnboundedSender<Played>,
    mut echo_rx: Option<mpsc::UnboundedReceiver<String>>,
    taps: Vec<EchoTap>,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(FRAME_DURATION);
    // After a stall, send the backlog promptly rather than drifting further behind.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut playout = Playout {
        out_tx,
        played_tx,
        current: None,
        cancelled: BTreeSet::new(),
        done: BTreeSet::new(),
        echoes: echo_rx.is_some().then(Echoes::default),
        taps,
        sent_this_tick: false,
    };
    loop {
        let alive = tokio::select! {
            biased;
            () = stop.cancelled() => {
                playout.stopped();
                return;
            }
            Some(speech) = cancel_rx.recv() => playout.cancel(speech).await,
            echo = next_echo(&mut echo_rx) => {
                match echo {
                    Some(name) => playout.echoed(&name),
                    None => echo_rx = None,
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
async fn next_echo(echo_rx: &mut Option<mpsc::UnboundedReceiver<String>>) -> Option<String> {
    match echo_rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Playout {
    fn finished(&self, speech: SpeechId, pieces: u32, interrupted: bool) {
        let _ = self.played_tx.send(Played::Finished {
            speech,
            pieces,
            interrupted,
        });
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
            self.finished(speech, pieces, true);
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
        self.finished(speech, pieces, true);
        true
    }

    /// The call is over: the speech being played, and any sent but not confirmed, count as cut where
    /// they got to, so that the record has what the caller heard of them.
    fn stopped(&mut self) {
        if let Some(c) = self.current.take()
            && !self.done.contains(&c.speech)
        {
            let pieces = match &self.echoes {
                Some(echoes) => heard_when_cut(c.pieces, echoes.confirmed(c.speech)),
                None => c.pieces,
            };
            self.finished(c.speech, pieces, true);
        }
        if let Some(echoes) = self.echoes.take() {
            for (speech, waiting) in &echoes.unconfirmed {
                self.finished(
                    *speech,
                    heard_when_cut(waiting.pieces, echoes.confirmed(*speech)),
                    true,
                );
            }
        }
    }

    /// The far side played up to a mark.
    fn echoed(&mut self, name: &str) {
        let Some(echoes) = &mut self.echoes else {
            return;
        };
        if let Some((speech, pieces)) = echoes.echoed(name) {
            self.finished(speech, pieces, false);
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
                    self.finished(speech, waiting.pieces, false);
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
                            let _ = self.played_tx.send(Played::Audible {
                                speech,
                                at: Instant::now(),
                            });
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
                        _ => self.finished(speech, pieces, false),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(speech: u64, piece: u32) -> Queued {
        Queued::Frame {
            speech: SpeechId(speech),
            piece,
            bytes: vec![speech as u8; 4],
        }
    }

    /// Playout running on its own task, with the ends the tests hold.
    struct Harness {
        tap: EchoTap,
        queue_tx: mpsc::Sender<Queued>,
        cancel_tx: mpsc::UnboundedSender<SpeechId>,
        echo_tx: Option<mpsc::UnboundedSender<String>>,
        out_rx: mpsc::Receiver<Outbound>,
        played_rx: mpsc::UnboundedReceiver<Played>,
        stop: CancellationToken,
    }

    impl Harness {
        fn start(echoes: bool) -> Self {
            let (queue_tx, queue_rx) = mpsc::channel(64);
            let (cancel_tx, cancel_rx) = mpsc::unbounded_channel();
            let (out_tx, out_rx) = mpsc::channel(64);
            let (played_tx, played_rx) = mpsc::unbounded_channel();
            let (echo_tx, echo_rx) = if echoes {
                let (tx, rx) = mpsc::unbounded_channel();
                (Some(tx), Some(rx))
            } else {
                (None, None)
            };
            let stop = CancellationToken::new();
            let tap = EchoTap::default();
            tokio::spawn(run(
                queue_rx,
                cancel_rx,
                out_tx,
                played_tx,
                echo_rx,
                vec![tap.clone()],
                stop.clone(),
            ));
            Self {
                tap,
                queue_tx,
                cancel_tx,
                echo_tx,
                out_rx,
                played_rx,
                stop,
            }
        }

        /// Queues `frames` frames of each of `pieces` pieces of `speech`, then its end.
        async fn queue_speech(&self, speech: u64, pieces: u32, frames: usize) {
            for piece in 0..pieces {
                for _ in 0..frames {
                    self.queue_tx.send(frame(speech, piece)).await.unwrap();
                }
            }
            self.queue_tx
                .send(Queued::End(SpeechId(speech)))
                .await
                .unwrap();
        }

        /// What went out on the wire so far: audio frames counted, everything else in order.
        fn wire(&mut self) -> (usize, Vec<Outbound>) {
            let mut frames = 0;
            let mut others = Vec::new();
            while let Ok(out) = self.out_rx.try_recv() {
                match out {
                    Outbound::Audio(_) => frames += 1,
                    other => others.push(other),
                }
            }
            (frames, others)
        }

        fn echo(&self, name: &str) {
            self.echo_tx
                .as_ref()
                .unwrap()
                .send(name.to_owned())
                .unwrap();
        }

        fn played(&mut self) -> Vec<Played> {
            std::iter::from_fn(|| self.played_rx.try_recv().ok()).collect()
        }
    }

    impl Drop for Harness {
        fn drop(&mut self) {
            self.stop.cancel();
        }
    }

    fn finished(speech: u64, pieces: u32, interrupted: bool) -> Played {
        Played::Finished {
            speech: SpeechId(speech),
            pieces,
            interrupted,
        }
    }

    #[test]
    fn echoed_mark_names_are_read_back_and_foreign_ones_ignored() {
        assert_eq!(
            parse_mark(&piece_mark(SpeechId(7), 2)),
            Some((SpeechId(7), Some(3)))
        );
        assert_eq!(
            parse_mark(&end_mark(SpeechId(7))),
            Some((SpeechId(7), None))
        );
        for foreign in [
            "",
            "speech-",
            "speech-x",
            "speech-1.",
            "speech-1.x",
            "greeting",
            "speech-1.4294967295",
        ] {
            assert_eq!(parse_mark(foreign), None, "{foreign}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn frames_leave_one_per_tick_and_a_cut_speech_reports_what_was_heard() {
        let mut playout = Harness::start(false);
        playout.queue_speech(1, 3, 5).await;
        playout.queue_speech(2, 1, 1).await;

        // 130 ms: six or seven frames, the first piece's and the start of the second, with the mark
        // between them.
        tokio::time::sleep(Duration::from_millis(130)).await;
        let (frames, marks) = playout.wire();
        assert!((6..=8).contains(&frames), "{frames} frames in 130 ms");
        assert_eq!(marks, vec![Outbound::Mark("speech-1.0".into())]);
        assert!(matches!(
            playout.played()[..],
            [Played::Audible {
                speech: SpeechId(1),
                ..
            }]
        ));
        // Barge-in: speech 1 is cut during its second piece; the far side is told to clear.
        playout.cancel_tx.send(SpeechId(1)).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(playout.wire(), (0, vec![Outbound::Clear]));
        assert_eq!(playout.played(), vec![finished(1, 2, true)]);
        // Its remaining frames are skipped; speech 2 plays next and ends with its mark.
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(playout.wire(), (1, vec![Outbound::Mark("speech-2".into())]));
        let played = playout.played();
        assert!(matches!(
            played[0],
            Played::Audible {
                speech: SpeechId(2),
                ..
            }
        ));
        assert_eq!(played[1..], [finished(2, 1, false)]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_echo_reference_gets_every_frame_sent_and_a_silent_tick_when_none_is() {
        let mut playout = Harness::start(false);
        playout.queue_speech(3, 1, 2).await;
        tokio::time::sleep(Duration::from_millis(90)).await;
        let (frames, _) = playout.wire();
        let ticks = playout.tap.take();
        assert_eq!(frames, 2);
        // Frames in the order sent, then one silent tick per 20 ms.
        assert_eq!(ticks[..2], [Some(vec![3; 4]), Some(vec![3; 4])]);
        assert!(ticks.len() >= 4, "{ticks:?}");
        assert!(ticks[2..].iter().all(Option::is_none), "{ticks:?}");
        // A cut speech's skipped frames never reach the reference.
        playout.queue_speech(4, 1, 50).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        playout.cancel_tx.send(SpeechId(4)).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = playout.wire().0;
        let taken = playout.tap.take();
        assert_eq!(taken.iter().filter(|t| t.is_some()).count(), sent);
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_of_the_call_reports_the_speech_being_played_as_cut_where_it_got_to() {
        let mut playout = Harness::start(false);
        playout.queue_speech(1, 3, 5).await;
        playout.queue_speech(2, 1, 5).await;
        tokio::time::sleep(Duration::from_millis(130)).await; // into speech 1's second piece
        let _ = playout.played();
        playout.stop.cancel();
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Speech 2 never played: nothing of it was heard, and nothing is reported.
        assert_eq!(playout.played(), vec![finished(1, 2, true)]);
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_speech_not_yet_played_drops_it_silently() {
        let mut playout = Harness::start(false);
        playout.cancel_tx.send(SpeechId(3)).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        playout.queue_speech(3, 1, 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            playout.wire(),
            (0, vec![]),
            "nothing sent, not even a clear"
        );
        assert_eq!(playout.played(), vec![finished(3, 0, true)]);
    }

    #[tokio::test(start_paused = true)]
    async fn with_echoes_a_speech_finishes_when_its_end_mark_comes_back() {
        let mut playout = Harness::start(true);
        playout.queue_speech(1, 2, 2).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            playout.wire(),
            (
                4,
                vec![
                    Outbound::Mark("speech-1.0".into()),
                    Outbound::Mark("speech-1".into())
                ]
            )
        );
        // Everything was sent, but the caller has not heard it yet.
        assert_eq!(playout.played().len(), 1, "only audible so far");
        playout.echo("speech-1.0");
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(playout.played().is_empty());
        playout.echo("speech-1");
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(playout.played(), vec![finished(1, 2, false)]);
    }

    #[tokio::test(start_paused = true)]
    async fn with_echoes_a_barge_in_counts_only_what_the_far_side_confirmed() {
        let mut playout = Harness::start(true);
        playout.queue_speech(1, 4, 2).await;
        // All four pieces sent; the far side, behind, has played only the first.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(playout.wire().0, 8);
        playout.echo("speech-1.0");
        tokio::time::sleep(Duration::from_millis(5)).await;
        playout.played();
        playout.cancel_tx.send(SpeechId(1)).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        // The clock alone would say four pieces: the echoes say the first, and the second was playing.
        assert_eq!(playout.wire(), (0, vec![Outbound::Clear]));
        assert_eq!(playout.played(), vec![finished(1, 2, true)]);
        // The marks the far side flushes on the clear change nothing.
        playout.echo("speech-1.1");
        playout.echo("speech-1");
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(playout.played().is_empty());

        // Cut while still sending, with nothing confirmed: only the piece that was playing.
        playout.queue_speech(2, 3, 5).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        playout.cancel_tx.send(SpeechId(2)).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let played = playout.played();
        assert_eq!(played.last(), Some(&finished(2, 1, true)), "{played:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_far_side_that_stops_echoing_hands_the_decision_back_to_the_clock() {
        let mut playout = Harness::start(true);
        playout.queue_speech(1, 1, 2).await;
        tokio::time::sleep(ECHO_GRACE - Duration::from_millis(100)).await;
        assert_eq!(playout.played().len(), 1, "still waiting for the echo");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(playout.played(), vec![finished(1, 1, false)]);
        // From now on a speech is finished when sent, and a late echo is ignored.
        playout.echo("speech-1");
        playout.queue_speech(2, 1, 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(playout.played()[1..], [finished(2, 1, false)]);
    }
}
