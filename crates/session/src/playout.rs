//! Media out: the only place that owns the call's 20 ms clock. It sends one frame per tick, drops the
//! frames of cancelled speech at once (and tells the far side to drop what it has queued), and reports
//! what was actually heard: when each speech became audible and how many of its pieces were played.

use std::collections::BTreeSet;
use std::time::Instant;

use switchboard_audio::FRAME_DURATION;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::machine::SpeechId;
use crate::media::Outbound;

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
    pieces: u32,
}

/// Runs the clock until `stop`, or until the session or the transport goes away.
pub(crate) async fn run(
    mut queue_rx: mpsc::Receiver<Queued>,
    mut cancel_rx: mpsc::UnboundedReceiver<SpeechId>,
    out_tx: mpsc::Sender<Outbound>,
    played_tx: mpsc::UnboundedSender<Played>,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(FRAME_DURATION);
    // After a stall, send the backlog promptly rather than drifting further behind.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut current: Option<Current> = None;
    let mut cancelled: BTreeSet<SpeechId> = BTreeSet::new();
    let mut done: BTreeSet<SpeechId> = BTreeSet::new();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            Some(speech) = cancel_rx.recv() => {
                if done.contains(&speech) || !cancelled.insert(speech) {
                    continue;
                }
                let pieces = match current {
                    Some(c) if c.speech == speech => {
                        current = None;
                        if out_tx.send(Outbound::Clear).await.is_err() {
                            return;
                        }
                        c.pieces
                    }
                    _ => 0,
                };
                done.insert(speech);
                let _ = played_tx.send(Played::Finished { speech, pieces, interrupted: true });
            }
            _ = ticker.tick() => {
                if !send_next_frame(&mut queue_rx, &out_tx, &played_tx, &mut current, &cancelled, &mut done).await {
                    return;
                }
                // Old ids can never come back: keep the sets small on long calls.
                if let Some(&newest) = done.iter().next_back() {
                    let floor = SpeechId(newest.0.saturating_sub(64));
                    done = done.split_off(&floor);
                    cancelled = cancelled.split_off(&floor);
                }
            }
        }
    }
}

/// Sends the next audible frame, handling end markers and skipping cancelled speech on the way. Returns
/// false when the transport or the session is gone.
async fn send_next_frame(
    queue_rx: &mut mpsc::Receiver<Queued>,
    out_tx: &mpsc::Sender<Outbound>,
    played_tx: &mpsc::UnboundedSender<Played>,
    current: &mut Option<Current>,
    cancelled: &BTreeSet<SpeechId>,
    done: &mut BTreeSet<SpeechId>,
) -> bool {
    loop {
        let item = match queue_rx.try_recv() {
            Ok(item) => item,
            Err(mpsc::error::TryRecvError::Empty) => return true,
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
        };
        match item {
            Queued::Frame { speech, .. } if cancelled.contains(&speech) => continue,
            Queued::Frame {
                speech,
                piece,
                bytes,
            } => {
                match current {
                    Some(c) if c.speech == speech => c.pieces = c.pieces.max(piece + 1),
                    _ => {
                        *current = Some(Current {
                            speech,
                            pieces: piece + 1,
                        });
                        let _ = played_tx.send(Played::Audible {
                            speech,
                            at: Instant::now(),
                        });
                    }
                }
                return out_tx.send(Outbound::Audio(bytes)).await.is_ok();
            }
            Queued::End(speech) => {
                if cancelled.contains(&speech) || !done.insert(speech) {
                    continue;
                }
                let pieces = match current.take() {
                    Some(c) if c.speech == speech => c.pieces,
                    other => {
                        *current = other;
                        0
                    }
                };
                if out_tx
                    .send(Outbound::Mark(format!("speech-{}", speech.0)))
                    .await
                    .is_err()
                {
                    return false;
                }
                let _ = played_tx.send(Played::Finished {
                    speech,
                    pieces,
                    interrupted: false,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn frame(speech: u64, piece: u32) -> Queued {
        Queued::Frame {
            speech: SpeechId(speech),
            piece,
            bytes: vec![speech as u8; 4],
        }
    }

    /// Playout running on its own task, with the ends the tests hold.
    #[allow(clippy::type_complexity)]
    fn spawn_playout() -> (
        mpsc::Sender<Queued>,
        mpsc::UnboundedSender<SpeechId>,
        mpsc::Receiver<Outbound>,
        mpsc::UnboundedReceiver<Played>,
        CancellationToken,
    ) {
        let (queue_tx, queue_rx) = mpsc::channel(64);
        let (cancel_tx, cancel_rx) = mpsc::unbounded_channel();
        let (out_tx, out_rx) = mpsc::channel(64);
        let (played_tx, played_rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        tokio::spawn(run(queue_rx, cancel_rx, out_tx, played_tx, stop.clone()));
        (queue_tx, cancel_tx, out_rx, played_rx, stop)
    }

    #[tokio::test(start_paused = true)]
    async fn frames_leave_one_per_tick_and_a_cut_speech_reports_what_was_heard() {
        let (queue_tx, cancel_tx, mut out_rx, mut played_rx, stop) = spawn_playout();

        for piece in 0..3 {
            for _ in 0..5 {
                queue_tx.send(frame(1, piece)).await.unwrap();
            }
        }
        queue_tx.send(Queued::End(SpeechId(1))).await.unwrap();
        queue_tx.send(frame(2, 0)).await.unwrap();
        queue_tx.send(Queued::End(SpeechId(2))).await.unwrap();

        // 100 ms: five frames of piece 0 at most.
        tokio::time::sleep(Duration::from_millis(110)).await;
        let mut sent = 0;
        while let Ok(Outbound::Audio(_)) = out_rx.try_recv() {
            sent += 1;
        }
        assert!((5..=7).contains(&sent), "{sent} frames in 110 ms");
        assert!(matches!(
            played_rx.try_recv(),
            Ok(Played::Audible {
                speech: SpeechId(1),
                ..
            })
        ));
        // Barge-in: speech 1 is cut during its second piece; the far side is told to clear.
        cancel_tx.send(SpeechId(1)).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(out_rx.try_recv(), Ok(Outbound::Clear));
        assert_eq!(
            played_rx.try_recv(),
            Ok(Played::Finished {
                speech: SpeechId(1),
                pieces: 2,
                interrupted: true
            })
        );
        // Its remaining frames are skipped; speech 2 plays next and ends with a mark.
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(out_rx.try_recv(), Ok(Outbound::Audio(vec![2; 4])));
        assert_eq!(out_rx.try_recv(), Ok(Outbound::Mark("speech-2".into())));
        assert!(matches!(
            played_rx.try_recv(),
            Ok(Played::Audible {
                speech: SpeechId(2),
                ..
            })
        ));
        assert_eq!(
            played_rx.try_recv(),
            Ok(Played::Finished {
                speech: SpeechId(2),
                pieces: 1,
                interrupted: false
            })
        );
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_speech_not_yet_played_drops_it_silently() {
        let (queue_tx, cancel_tx, mut out_rx, mut played_rx, stop) = spawn_playout();
        cancel_tx.send(SpeechId(3)).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        queue_tx.send(frame(3, 0)).await.unwrap();
        queue_tx.send(Queued::End(SpeechId(3))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(out_rx.try_recv().is_err(), "nothing sent, not even a clear");
        assert_eq!(
            played_rx.try_recv(),
            Ok(Played::Finished {
                speech: SpeechId(3),
                pieces: 0,
                interrupted: true
            })
        );
        assert!(played_rx.try_recv().is_err());
        stop.cancel();
    }
}
