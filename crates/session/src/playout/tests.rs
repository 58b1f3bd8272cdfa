use super::marks::parse_mark;
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
    cancel_tx: mpsc::Sender<SpeechId>,
    marks_tx: mpsc::Sender<String>,
    out_rx: mpsc::Receiver<Outbound>,
    played_rx: mpsc::Receiver<Played>,
    stop: CancellationToken,
}

impl Harness {
    fn start(echoes: bool) -> Self {
        let (queue_tx, queue_rx) = mpsc::channel(64);
        let (cancel_tx, cancel_rx) = mpsc::channel(8);
        let (marks_tx, marks_rx) = mpsc::channel(8);
        let (out_tx, out_rx) = mpsc::channel(64);
        let (played_tx, played_rx) = mpsc::channel(64);
        let stop = CancellationToken::new();
        let tap = EchoTap::default();
        let lines = Lines {
            queue_rx,
            cancel_rx,
            marks_rx,
            out_tx,
            played_tx,
        };
        tokio::spawn(run(lines, echoes, vec![tap.clone()], stop.clone()));
        Self {
            tap,
            queue_tx,
            cancel_tx,
            marks_tx,
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
        self.marks_tx.try_send(name.to_owned()).unwrap();
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
    playout.cancel_tx.try_send(SpeechId(1)).unwrap();
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
    playout.cancel_tx.try_send(SpeechId(4)).unwrap();
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
    playout.cancel_tx.try_send(SpeechId(3)).unwrap();
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
    playout.cancel_tx.try_send(SpeechId(1)).unwrap();
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
    playout.cancel_tx.try_send(SpeechId(2)).unwrap();
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
