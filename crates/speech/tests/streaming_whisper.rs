//! Streaming recognition on real recorded speech, fed in 20 ms frames as a caller speaks: partials
//! arrive while the audio goes on, each covers more of it, and the final transcript is the same as
//! transcribing the whole recording at once.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_audio::corpus::prompts_for_tests;

use common::provisioned_whisper_tiny;
use switchboard_speech::wer::{normalize, word_errors};
use switchboard_speech::whisper::{TranscribeOptions, WhisperModel};
use switchboard_speech::{
    Recognizer, SpeechToText, StreamOptions, StreamingRecognizer, WhisperRecognizer,
};

#[test]
fn partials_arrive_while_speaking_and_the_final_matches_batch() {
    let Some(prompts) = prompts_for_tests(200) else {
        return;
    };
    let Some(ggml) = provisioned_whisper_tiny() else {
        return;
    };
    let model = Arc::new(WhisperModel::load(&ggml).unwrap());
    let recognizer = Arc::new(WhisperRecognizer::new(model, TranscribeOptions::default()));
    let stt = StreamingRecognizer::new(recognizer.clone(), StreamOptions::default());

    // Three prompts of 4 to 8 s: long enough for several partials, as long as a caller's turn.
    let turns = prompts
        .iter()
        .filter(|p| (64_000..=128_000).contains(&p.samples.len()))
        .take(3);
    for prompt in turns {
        let audio: Vec<f32> = prompt
            .samples
            .iter()
            .map(|&s| f32::from(s) / 32_768.0)
            .collect();
        let mut stream = stt.stream();
        let mut partials = Vec::new();
        // A caller who pauses for the recogniser: after every 500 ms of speech (the partial interval) we
        // wait for that partial before going on, so the test checks what streaming yields, not how fast
        // this machine is while other tests share it (latency is `bench latency`'s job).
        for (i, frame) in audio.chunks(320).enumerate() {
            stream.push(frame).unwrap();
            if (i + 1) % 25 == 0 && (i + 1) * 320 < audio.len() {
                let deadline = Instant::now() + Duration::from_secs(120);
                let partial = loop {
                    if let Some(p) = stream.poll_partial() {
                        break p;
                    }
                    assert!(Instant::now() < deadline, "no partial within 120 s");
                    std::thread::sleep(Duration::from_millis(10));
                };
                assert!(!partial.is_final);
                partials.push(partial);
            }
        }
        let end_of_speech = Instant::now();
        let last = stream.finish().unwrap();
        let final_wait = end_of_speech.elapsed();
        let batch = recognizer.transcribe(&audio).unwrap();

        println!(
            "{} ({:.1} s): {} partials; final after {} ms: {:?}",
            prompt.name,
            audio.len() as f64 / 16_000.0,
            partials.len(),
            final_wait.as_millis(),
            last.text
        );
        for p in &partials {
            println!("  partial at {:.1} s: {:?}", p.audio.as_secs_f64(), p.text);
        }
        assert!(last.is_final);
        // How many partials fit depends on the machine (a pass takes 1–5 s here, debug to release); at
        // least one must arrive while the caller is still speaking.
        assert!(
            partials
                .iter()
                .any(|p| p.audio.as_secs_f64() * 16_000.0 < audio.len() as f64),
            "no partial during {:.1} s of speech",
            audio.len() as f64 / 16_000.0
        );
        assert!(partials.windows(2).all(|w| w[0].audio < w[1].audio));
        assert_eq!(normalize(&last.text), normalize(&batch.text));
        assert!((0.0..=1.0).contains(&last.confidence));
        let reference = normalize(&prompt.text);
        let errors = word_errors(&reference, &normalize(&last.text));
        assert!(
            errors * 3 <= reference.len(),
            "{:?} heard as {:?}",
            prompt.text,
            last.text
        );
    }
}
