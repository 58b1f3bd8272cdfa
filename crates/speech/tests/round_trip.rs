//! Round trip through the telephone: our voices speak 20 varied sentences, the audio goes down to 8 kHz
//! µ-law and back up to 16 kHz as on a phone line, and Whisper transcribes it. The word error rate is
//! printed for every provisioned voice and asserted for the default one, so a broken phonemizer, a wrong
//! sample rate or a mangled chunk join fails here rather than on a caller.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::Path;
use std::time::Instant;

use switchboard_audio::SampleRate;
use switchboard_audio::corpus::{models_dir_for_tests, resample_all, through_the_phone};
use switchboard_core::config::TtsEngine;
use switchboard_speech::tts::{TextToSpeech, TtsOptions, load};
use switchboard_speech::wer::{normalize, word_errors};
use switchboard_speech::whisper::{TranscribeOptions, WhisperModel};

/// What a claims line hears and says: numbers, dates, names, addresses, questions, e-mail, money.
const SENTENCES: [&str; 20] = [
    "Your claim number is 4 4 7 2.",
    "Please hold while I transfer you to an adjuster.",
    "The accident happened on Tuesday morning near the bridge.",
    "Can you spell your last name for me?",
    "My policy number is A B 1 2 3 4 5.",
    "Nobody was injured, but the car is badly damaged.",
    "We will send a confirmation to your email address.",
    "The water came through the kitchen ceiling last night.",
    "Is this the best number to call you back?",
    "I would like to report a stolen bicycle.",
    "Thank you for calling, how can I help you today?",
    "The repair estimate was about two thousand dollars.",
    "My name is John Smith and I live in Boston.",
    "An adjuster will contact you within two business days.",
    "Could you describe what happened in your own words?",
    "The other driver ran a red light and hit my door.",
    "I need to change the address on my account.",
    "Please have your policy documents ready when we call.",
    "Is there anything else I can help you with?",
    "Goodbye, and have a nice day.",
];

/// The voice's audio at 16 kHz, then through the phone line, as the recogniser gets it.
fn heard_on_the_phone(samples: &[f32], rate: u32) -> Vec<f32> {
    let pcm: Vec<i16> = samples
        .iter()
        .map(|&s| (s.clamp(-1.0, 1.0) * 32_767.0) as i16)
        .collect();
    let wide = resample_all(
        &pcm,
        SampleRate::from_hz(rate).unwrap(),
        SampleRate::Hz16000,
    )
    .unwrap();
    through_the_phone(&wide)
        .unwrap()
        .iter()
        .map(|&s| f32::from(s) / 32_768.0)
        .collect()
}

/// Word error rate of `tts` over [`SENTENCES`] through the phone, printing each sentence that differs.
fn telephone_wer(tts: &dyn TextToSpeech, whisper: &WhisperModel) -> f64 {
    let (mut errors, mut words, mut speech, mut spent) = (0, 0, 0.0, 0.0);
    for sentence in SENTENCES {
        let started = Instant::now();
        let audio = tts.synthesize_all(sentence).unwrap();
        spent += started.elapsed().as_secs_f64();
        let rate = tts.info().sample_rate;
        speech += audio.len() as f64 / f64::from(rate);
        let heard = whisper
            .transcribe(
                &heard_on_the_phone(&audio, rate),
                &TranscribeOptions::default(),
            )
            .unwrap();
        let (reference, hypothesis) = (normalize(sentence), normalize(&heard.text));
        let e = word_errors(&reference, &hypothesis);
        if e > 0 {
            println!("  {sentence:?} -> {:?} ({e} errors)", heard.text);
        }
        errors += e;
        words += reference.len();
    }
    let wer = errors as f64 / words as f64;
    println!(
        "{} {}: telephone WER {:.1} % over {words} words; synthesis real-time factor {:.3}",
        tts.info().engine,
        tts.info().voice,
        100.0 * wer,
        spent / speech
    );
    wer
}

fn provisioned(path: &Path, what: &str) -> bool {
    if path.exists() {
        return true;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "CI=true and {what} is not provisioned in {}",
        path.display()
    );
    eprintln!("SKIPPED: {what} is not provisioned (make models)");
    false
}

fn options(engine: TtsEngine, voice: &str) -> TtsOptions {
    TtsOptions {
        engine,
        voice: voice.into(),
        rate: 1.0,
        threads: 2,
        models_dir: models_dir_for_tests(),
        kokoro_voices: None,
        espeak_voice: "en-us".into(),
    }
}

#[test]
fn spoken_sentences_survive_the_telephone_path() {
    let models = models_dir_for_tests();
    let ggml = models.join("whisper-tiny/ggml-model.bin");
    let piper = models.join("piper/en_US-joe-medium.onnx");
    if !provisioned(&ggml, "whisper-tiny") || !provisioned(&piper, "the Piper voice") {
        return;
    }
    let whisper = WhisperModel::load(&ggml).unwrap();

    // The default voice: asserted against the target.
    let tts = load(&options(TtsEngine::Piper, "en_US-joe-medium")).unwrap();
    let wer = telephone_wer(tts.as_ref(), &whisper);
    assert!(
        wer <= 0.10,
        "Piper round-trip WER {:.1} % > 10 %",
        wer * 100.0
    );

    // The last-resort voice is robotic and tiny.en mishears much of it (42.5 % when measured); it must
    // still carry most words.
    let tts = load(&options(TtsEngine::Espeak, "en-us")).unwrap();
    let wer = telephone_wer(tts.as_ref(), &whisper);
    assert!(
        wer <= 0.5,
        "espeak-ng round-trip WER {:.1} % > 50 %",
        wer * 100.0
    );

    // Kokoro with the shipped voice pack (Japanese voices reading English), when provisioned.
    // `make test` provisions it; by hand: `switchboard models fetch kokoro-82m kokoro-voices-ja`.
    if provisioned(&models.join("kokoro/kokoro-v1.0.int8.onnx"), "Kokoro") {
        let tts = load(&options(TtsEngine::Kokoro, "jf_alpha")).unwrap();
        let wer = telephone_wer(tts.as_ref(), &whisper);
        assert!(
            wer <= 0.20,
            "Kokoro round-trip WER {:.1} % > 20 %",
            wer * 100.0
        );
    }
}
