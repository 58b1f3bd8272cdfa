//! VAD precision and recall on real recorded speech with noise at 20, 10 and 5 dB SNR.
//!
//! Needs the prompts (make setup) and, for Silero, the provisioned models (make models). Outside CI a
//! missing piece skips with a message; under CI=true it fails.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use switchboard_audio::corpus::{mix_at_snr, models_dir_for_tests, pink_noise, prompts_for_tests};
use switchboard_audio::eval::{build_signal, score, score_front_end};
use switchboard_audio::onnx::runtime_library;
use switchboard_audio::vad::{EnergyVad, SileroVad, VadDetector, VadOptions};
use switchboard_audio::{FrontEnd, FrontEndOptions, InputFormat, SampleRate};

#[test]
fn silero_meets_the_targets_on_real_speech_in_noise() {
    let Some(prompts) = prompts_for_tests(40) else {
        return;
    };
    let dir = models_dir_for_tests();
    let model = dir.join("silero-vad/silero_vad.onnx");
    if !model.is_file() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true and the Silero model is not provisioned"
        );
        return eprintln!("SKIPPED: the Silero model is not provisioned (make models)");
    }
    let signal = build_signal(&prompts, 7);
    let active = signal.active_samples();
    let noise = pink_noise(signal.samples.len(), 42);
    println!(
        "{} prompts, {:.1} s, {} speech frames",
        prompts.len(),
        signal.samples.len() as f64 / 16_000.0,
        signal.labels.iter().filter(|l| **l).count()
    );
    for snr in [20.0, 10.0, 5.0] {
        let noisy = mix_at_snr(&signal.samples, &active, &noise, snr);
        let silero = SileroVad::load(&runtime_library(&dir), &model).unwrap();
        let mut detector = VadDetector::new(Box::new(silero), VadOptions::for_sensitivity(2));
        let s = score(&mut detector, &noisy, &signal.labels).unwrap();
        let mut energy = VadDetector::new(
            Box::new(EnergyVad::new(VadOptions::energy_margin_db(2))),
            VadOptions::for_sensitivity(2),
        );
        let e = score(&mut energy, &noisy, &signal.labels).unwrap();
        println!(
            "SNR {snr:>4} dB  silero precision {:.3} recall {:.3} ({} segments)  energy precision {:.3} recall {:.3}",
            s.precision, s.recall, s.segments, e.precision, e.recall
        );
        // The VAD as deployed: after noise suppression and AGC (no echo reference: the agent is silent).
        let mut options = FrontEndOptions::full(InputFormat::Pcm16(SampleRate::Hz16000), 2);
        options.echo = None;
        let engine = SileroVad::load(&runtime_library(&dir), &model).unwrap();
        let mut front = FrontEnd::new(options, Box::new(engine)).unwrap();
        let c = score_front_end(&mut front, &noisy, &signal.labels).unwrap();
        println!(
            "             whole chain precision {:.3} recall {:.3} ({} segments)",
            c.precision, c.recall, c.segments
        );
        if snr >= 10.0 {
            for (what, v) in [("silero", s), ("chain", c)] {
                assert!(
                    v.recall >= 0.95,
                    "{what} recall {:.3} at {snr} dB",
                    v.recall
                );
                assert!(
                    v.precision >= 0.90,
                    "{what} precision {:.3} at {snr} dB",
                    v.precision
                );
            }
        }
    }
}
