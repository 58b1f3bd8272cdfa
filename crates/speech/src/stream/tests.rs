use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// "Recognises" the audio's length in 100 ms units, taking `delay` per pass.
struct Counting {
    delay: Duration,
    passes: AtomicUsize,
}

impl Recognizer for Counting {
    fn transcribe(&self, audio: &[f32]) -> Result<Transcript, SttError> {
        self.passes.fetch_add(1, Ordering::SeqCst);
        thread::sleep(self.delay);
        let tenths = audio.len() / 1_600;
        Ok(Transcript {
            text: format!("{tenths}"),
            segments: vec![Segment {
                start: 0.0,
                end: audio.len() as f64 / 16_000.0,
                text: format!("{tenths}"),
                confidence: 0.75,
            }],
            audio_seconds: audio.len() as f64 / 16_000.0,
            language: Some("en".into()),
            elapsed: self.delay,
        })
    }
}

fn recognizer(delay_ms: u64) -> Arc<Counting> {
    Arc::new(Counting {
        delay: Duration::from_millis(delay_ms),
        passes: AtomicUsize::new(0),
    })
}

fn wait_partial(stream: &mut dyn SpeechStream) -> Hypothesis {
    for _ in 0..500 {
        if let Some(h) = stream.poll_partial() {
            return h;
        }
        thread::sleep(Duration::from_millis(2));
    }
    panic!("no partial within 1 s");
}

#[test]
fn partials_follow_the_audio_and_the_final_covers_all_of_it() {
    let recognizer = recognizer(1);
    let stt = StreamingRecognizer::new(recognizer.clone(), StreamOptions::default());
    let mut stream = stt.stream();
    let frame = vec![0.0f32; 320];
    for _ in 0..24 {
        stream.push(&frame).unwrap(); // 480 ms: not yet due
    }
    assert!(stream.poll_partial().is_none());
    stream.push(&frame).unwrap(); // 500 ms
    let partial = wait_partial(stream.as_mut());
    assert_eq!(partial.text, "5");
    assert!(!partial.is_final);
    assert_eq!(partial.confidence, 0.75);
    for _ in 0..10 {
        stream.push(&frame).unwrap(); // 700 ms
    }
    let last = stream.finish().unwrap();
    assert!(last.is_final);
    assert_eq!(last.text, "7");
    assert_eq!(last.audio, Duration::from_millis(700));
    assert_eq!(recognizer.passes.load(Ordering::SeqCst), 2);
}

#[test]
fn a_pass_over_all_the_audio_is_the_final_without_a_second_pass() {
    let recognizer = recognizer(50);
    let stt = StreamingRecognizer::new(recognizer.clone(), StreamOptions::default());
    let mut stream = stt.stream();
    stream.push(&vec![0.0; 8_000]).unwrap(); // a partial starts at 500 ms and runs 50 ms
    let last = stream.finish().unwrap();
    assert_eq!(last.text, "5");
    assert!(last.is_final);
    assert_eq!(recognizer.passes.load(Ordering::SeqCst), 1);
}

#[test]
fn a_pass_missing_more_than_the_tail_is_not_reused() {
    let recognizer = recognizer(1);
    let options = StreamOptions {
        final_reuse_tail: Duration::from_millis(100),
        ..StreamOptions::default()
    };
    let stt = StreamingRecognizer::new(recognizer.clone(), options);
    let mut stream = stt.stream();
    stream.push(&vec![0.0; 8_000]).unwrap();
    let _ = wait_partial(stream.as_mut());
    stream.push(&vec![0.0; 1_600]).unwrap(); // +100 ms: within the tail, reused
    assert_eq!(stream.finish().unwrap().text, "5");
    let mut stream = stt.stream();
    stream.push(&vec![0.0; 8_000]).unwrap();
    let _ = wait_partial(stream.as_mut());
    stream.push(&vec![0.0; 3_200]).unwrap(); // +200 ms: a new pass
    assert_eq!(stream.finish().unwrap().text, "7");
}

#[test]
fn a_pause_starts_the_pass_that_becomes_the_final() {
    let recognizer = recognizer(30);
    let options = StreamOptions::for_calls(Duration::from_secs(10), Duration::from_millis(320));
    let stt = StreamingRecognizer::new(recognizer.clone(), options);
    let mut stream = stt.stream();
    stream.push(&vec![0.0; 16_000]).unwrap(); // 1 s of speech, no partial due
    stream.speech_paused();
    stream.push(&vec![0.0; 5_120]).unwrap(); // the 320 ms of silence that ends the turn
    let last = stream.finish().unwrap();
    assert_eq!(last.text, "10", "the pass from the pause is the final");
    assert_eq!(last.audio, Duration::from_millis(1_320));
    assert_eq!(recognizer.passes.load(Ordering::SeqCst), 1);
}

#[test]
fn the_pass_from_a_held_pause_is_the_final_but_not_after_more_speech() {
    let recognizer = recognizer(30);
    let options = StreamOptions::for_calls(Duration::from_secs(10), Duration::from_millis(320));
    let stt = StreamingRecognizer::new(recognizer.clone(), options);
    // A pause held open for 1 s: all of it silence, the pass at the pause is the final.
    let mut stream = stt.stream();
    stream.push(&vec![0.0; 16_000]).unwrap();
    stream.speech_paused();
    stream.push(&vec![0.0; 16_000]).unwrap();
    assert_eq!(stream.finish().unwrap().text, "10");
    assert_eq!(recognizer.passes.load(Ordering::SeqCst), 1);
    // The caller went on after the pause (0.6 s of speech, then 0.4 s quiet): the pass at the
    // first pause misses words and is not the final.
    let mut stream = stt.stream();
    stream.push(&vec![0.0; 16_000]).unwrap();
    stream.speech_paused();
    thread::sleep(Duration::from_millis(60)); // the pass runs
    stream.speech_resumed();
    stream.push(&vec![0.0; 9_600]).unwrap();
    stream.push(&vec![0.0; 6_400]).unwrap();
    assert_eq!(stream.finish().unwrap().text, "20", "a pass over all of it");
}

#[test]
fn the_transcript_to_a_pause_is_known_once_a_pass_covers_it() {
    let recognizer = recognizer(30);
    let options = StreamOptions::for_calls(Duration::from_secs(10), Duration::from_millis(320));
    let stt = StreamingRecognizer::new(recognizer.clone(), options);
    let mut stream = stt.stream();
    stream.push(&vec![0.0; 16_000]).unwrap();
    assert_eq!(stream.transcript_to_pause(), None, "not pausing");
    stream.speech_paused();
    stream.push(&vec![0.0; 1_600]).unwrap(); // quiet, not yet transcribed
    thread::sleep(Duration::from_millis(100));
    assert_eq!(stream.transcript_to_pause().as_deref(), Some("10"));
    stream.speech_resumed();
    assert_eq!(stream.transcript_to_pause(), None, "speaking again");
    stream.push(&vec![0.0; 3_200]).unwrap();
    stream.speech_paused(); // a pass over 1.3 s, which is not done yet
    assert_eq!(
        stream.transcript_to_pause(),
        None,
        "the 1 s pass does not cover it"
    );
    thread::sleep(Duration::from_millis(100));
    assert_eq!(stream.transcript_to_pause().as_deref(), Some("13"));
    assert_eq!(recognizer.passes.load(Ordering::SeqCst), 2);
}

#[test]
fn no_partial_runs_while_the_caller_is_quiet() {
    let recognizer = recognizer(30);
    let passes = || recognizer.passes.load(Ordering::SeqCst);
    let options = StreamOptions::for_calls(Duration::from_millis(500), Duration::from_millis(800));
    let stt = StreamingRecognizer::new(recognizer.clone(), options);
    let mut stream = stt.stream();
    stream.push(&vec![0.0; 6_400]).unwrap(); // 400 ms of speech: no partial due yet
    stream.speech_paused(); // the pass at the pause
    thread::sleep(Duration::from_millis(100)); // done
    for _ in 0..40 {
        stream.push(&vec![0.0; 320]).unwrap(); // 800 ms of silence, 20 ms frames
    }
    thread::sleep(Duration::from_millis(100));
    assert_eq!(passes(), 1, "a partial ran over the silence");
    assert_eq!(stream.transcript_to_pause().as_deref(), Some("4"));
    // The caller goes on: partials are due again.
    stream.speech_resumed();
    stream.push(&vec![0.0; 1_600]).unwrap();
    thread::sleep(Duration::from_millis(100));
    assert_eq!(passes(), 2);
    assert_eq!(stream.poll_partial().unwrap().text, "13");
}

/// Takes `delay` per pass unless told to stop, and counts the passes that stopped early.
struct Stoppable {
    inner: Counting,
    stopped: AtomicUsize,
}

impl Recognizer for Stoppable {
    fn transcribe(&self, audio: &[f32]) -> Result<Transcript, SttError> {
        self.inner.transcribe(audio)
    }

    fn transcribe_unless_stopped(
        &self,
        audio: &[f32],
        stop: Arc<AtomicBool>,
    ) -> Result<Transcript, SttError> {
        let started = Instant::now();
        while started.elapsed() < self.inner.delay {
            if stop.load(Ordering::Relaxed) {
                self.stopped.fetch_add(1, Ordering::SeqCst);
                return Err(SttError::Stopped);
            }
            thread::sleep(Duration::from_millis(1));
        }
        self.inner.transcribe(audio)
    }
}

#[test]
fn a_pause_stops_the_running_partial_only_when_preempting() {
    for preempt in [true, false] {
        let recognizer = Arc::new(Stoppable {
            inner: Counting {
                delay: Duration::from_millis(300),
                passes: AtomicUsize::new(0),
            },
            stopped: AtomicUsize::new(0),
        });
        let mut options =
            StreamOptions::for_calls(Duration::from_millis(500), Duration::from_millis(320));
        options.preempt_partials = preempt;
        let stt = StreamingRecognizer::new(recognizer.clone(), options);
        let mut stream = stt.stream();
        stream.push(&vec![0.0; 8_000]).unwrap(); // a partial pass starts at 500 ms
        stream.push(&vec![0.0; 4_800]).unwrap(); // 800 ms, then the caller pauses
        stream.speech_paused();
        stream.push(&vec![0.0; 5_120]).unwrap();
        assert_eq!(stream.finish().unwrap().text, "8", "preempt = {preempt}");
        let stopped = recognizer.stopped.load(Ordering::SeqCst);
        assert_eq!(stopped, usize::from(preempt), "preempt = {preempt}");
    }
}

#[test]
fn a_running_pass_from_a_pause_stops_when_the_caller_goes_on() {
    let recognizer = Arc::new(Stoppable {
        inner: Counting {
            delay: Duration::from_millis(300),
            passes: AtomicUsize::new(0),
        },
        stopped: AtomicUsize::new(0),
    });
    let options = StreamOptions::for_calls(Duration::from_secs(10), Duration::from_millis(320));
    let stt = StreamingRecognizer::new(recognizer.clone(), options);
    let mut stream = stt.stream();
    // A caller saying digit groups: a pass starts at every gap and stops when the next group does.
    for _ in 0..3 {
        stream.push(&vec![0.0; 8_000]).unwrap();
        stream.speech_paused();
        thread::sleep(Duration::from_millis(30));
        stream.speech_resumed();
    }
    stream.push(&vec![0.0; 8_000]).unwrap();
    stream.speech_paused();
    stream.push(&vec![0.0; 5_120]).unwrap();
    assert_eq!(stream.finish().unwrap().text, "20");
    // Only the pass from the last pause ran to its end; the three before it stopped at once.
    assert_eq!(recognizer.stopped.load(Ordering::SeqCst), 3);
    assert_eq!(recognizer.inner.passes.load(Ordering::SeqCst), 1);
}

#[test]
fn a_pause_during_a_pass_queues_the_next_one_behind_it() {
    let recognizer = recognizer(40);
    let options = StreamOptions::for_calls(Duration::from_millis(500), Duration::from_millis(320));
    let stt = StreamingRecognizer::new(recognizer.clone(), options);
    let mut stream = stt.stream();
    stream.push(&vec![0.0; 8_000]).unwrap(); // a partial pass starts at 500 ms
    stream.push(&vec![0.0; 4_800]).unwrap(); // 800 ms, then the caller pauses
    stream.speech_paused(); // a pass over 800 ms, started when the first one ends
    stream.push(&vec![0.0; 5_120]).unwrap();
    assert_eq!(stream.finish().unwrap().text, "8");
    assert_eq!(recognizer.passes.load(Ordering::SeqCst), 2);
}

#[test]
fn a_pass_queued_at_a_pause_is_dropped_when_the_caller_goes_on() {
    let recognizer = recognizer(200);
    let stt = StreamingRecognizer::new(recognizer.clone(), StreamOptions::default());
    let passes = || recognizer.passes.load(Ordering::SeqCst);
    let (mut first, mut second) = (stt.stream(), stt.stream());
    first.push(&vec![0.0; 8_000]).unwrap(); // holds the one slot for 200 ms
    second.push(&vec![0.0; 8_000]).unwrap();
    second.speech_paused(); // queued behind it
    second.speech_resumed(); // the caller goes on: the queued pass would be only a partial
    thread::sleep(Duration::from_millis(300));
    assert_eq!(passes(), 1, "only the first caller's partial ran");
    assert_eq!(second.finish().unwrap().text, "5");
    assert_eq!(passes(), 2);
}

#[test]
fn another_calls_final_goes_before_partials() {
    let recognizer = recognizer(200);
    let stt = StreamingRecognizer::new(recognizer.clone(), StreamOptions::default());
    let passes = || recognizer.passes.load(Ordering::SeqCst);
    let (mut first, mut second) = (stt.stream(), stt.stream());
    first.push(&vec![0.0; 8_000]).unwrap(); // the first caller's partial takes the one slot
    second.push(&vec![0.0; 8_000]).unwrap(); // the second's is skipped, not queued
    thread::sleep(Duration::from_millis(50));
    assert_eq!(passes(), 1);
    second.speech_paused(); // queued behind the running partial
    thread::sleep(Duration::from_millis(250)); // the partial ended; the paused pass runs
    assert_eq!(passes(), 2);
    first.push(&vec![0.0; 8_000]).unwrap(); // due, but the slot is the waiting caller's
    let final_text = second.finish().unwrap().text;
    assert_eq!(final_text, "5", "the pass from the pause is the final");
    assert_eq!(passes(), 2, "no partial ran while a caller waited");
    assert_eq!(first.finish().unwrap().text, "10");
    assert_eq!(passes(), 3);
}

#[test]
fn short_and_empty_utterances() {
    let stt = StreamingRecognizer::new(recognizer(1), StreamOptions::default());
    let mut stream = stt.stream();
    assert_eq!(stream.finish().unwrap().text, "0");
    let mut stream = stt.stream();
    stream.push(&vec![0.0; 3_000]).unwrap();
    assert!(stream.poll_partial().is_none());
}

#[test]
fn an_utterance_longer_than_the_limit_is_refused() {
    let stt = StreamingRecognizer::new(
        recognizer(1),
        StreamOptions {
            partial_interval: Duration::from_secs(10_000),
            ..StreamOptions::default()
        },
    );
    let mut stream = stt.stream();
    let minute = vec![0.0; 16_000 * 60];
    for _ in 0..10 {
        stream.push(&minute).unwrap();
    }
    assert!(matches!(stream.push(&[0.0]), Err(SttError::TooLong { .. })));
    assert_eq!(stream.audio(), Duration::from_secs(600));
}
