//! Whisper decodes greedily with no temperature fallback (see the recogniser): a decoder that falls into
//! a loop on audio that is not clear speech is stopped by the token budget and its text cut back to one
//! copy. Speech played backwards is a reliable way to make tiny.en loop: on the prompt below, without
//! the budget and the cut, it wrote "I'll be right now, and" 31 times in a row (156 words).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::time::Duration;

use switchboard_audio::corpus::prompts_for_tests;

use common::provisioned_whisper_tiny;
use switchboard_speech::whisper::{TranscribeOptions, WhisperModel};

#[test]
fn a_decoder_loop_on_backwards_speech_comes_back_as_one_copy() {
    let Some(prompts) = prompts_for_tests(usize::MAX) else {
        return;
    };
    let Some(ggml) = provisioned_whisper_tiny() else {
        return;
    };
    let model = WhisperModel::load(&ggml).unwrap();
    // The server's window (WHISPER_WINDOW_MS default).
    let options = TranscribeOptions {
        min_window: Some(Duration::from_secs(8)),
        ..TranscribeOptions::default()
    };
    let prompt = prompts
        .iter()
        .find(|p| p.name == "pls-hold-while-try")
        .expect("the prompt pls-hold-while-try is in asterisk-core-sounds-en");
    let backwards: Vec<f32> = prompt
        .samples
        .iter()
        .rev()
        .map(|&s| f32::from(s) / 32_768.0)
        .collect();
    let transcript = model.transcribe(&backwards, &options).unwrap();
    println!("{:?}", transcript.text);
    let words: Vec<&str> = transcript.text.split_whitespace().collect();
    assert!(
        words.len() <= 16,
        "{} words from {:.1} s of audio: {:?}",
        words.len(),
        transcript.audio_seconds,
        transcript.text
    );
    // No phrase of two to twelve words three times in a row.
    for phrase in 2..=12 {
        for at in 0..words.len().saturating_sub(3 * phrase - 1) {
            let copy = &words[at..at + phrase];
            assert!(
                copy != &words[at + phrase..at + 2 * phrase]
                    || copy != &words[at + 2 * phrase..at + 3 * phrase],
                "a loop is left in {:?}",
                transcript.text
            );
        }
    }
}
