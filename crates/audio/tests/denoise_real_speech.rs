//! Noise suppression on real speech in pink noise: SNR gain, noise reduction and speech kept, per input SNR.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::Path;

use switchboard_audio::RnnoiseDenoiser;
use switchboard_audio::corpus::{
    DEFAULT_SOUNDS_DIR, DEFAULT_TRANSCRIPTS, load_prompts, mix_at_snr, pink_noise,
};
use switchboard_audio::eval::{build_signal, score_denoise};

#[test]
fn rnnoise_raises_the_snr_of_real_speech() {
    let prompts = match load_prompts(
        Path::new(DEFAULT_SOUNDS_DIR),
        Path::new(DEFAULT_TRANSCRIPTS),
        15,
    ) {
        Ok(p) if !p.is_empty() => p,
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and the asterisk prompts are missing")
        }
        _ => return eprintln!("SKIPPED: asterisk prompts not installed (make setup)"),
    };
    let signal = build_signal(&prompts, 5);
    let active = signal.active_samples();
    let noise = pink_noise(signal.samples.len(), 77);
    for snr in [20.0, 10.0, 5.0] {
        let noisy = mix_at_snr(&signal.samples, &active, &noise, snr);
        let mut denoiser = RnnoiseDenoiser::new().unwrap();
        let s = score_denoise(&signal.samples, &noisy, &signal.labels, |f| {
            denoiser.process(f).unwrap()
        });
        println!(
            "SI-SDR {:5.1} dB -> {:5.1} dB (gain {:+.1} dB); pauses {:.1} dB quieter; delay {} samples",
            s.input_si_sdr_db,
            s.output_si_sdr_db,
            s.gain_db(),
            s.pause_noise_reduction_db,
            s.delay_samples
        );
        assert!(
            (s.input_si_sdr_db - snr).abs() < 1.0,
            "the mix is not at {snr} dB"
        );
        if snr <= 10.0 {
            assert!(
                s.gain_db() > 3.0,
                "SNR gain only {:.1} dB at {snr} dB",
                s.gain_db()
            );
        }
        assert!(s.pause_noise_reduction_db > 10.0);
    }
}

#[test]
fn the_spectral_suppressor_on_the_same_speech() {
    let prompts = match load_prompts(
        Path::new(DEFAULT_SOUNDS_DIR),
        Path::new(DEFAULT_TRANSCRIPTS),
        15,
    ) {
        Ok(p) if !p.is_empty() => p,
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and the asterisk prompts are missing")
        }
        _ => return eprintln!("SKIPPED: asterisk prompts not installed (make setup)"),
    };
    let signal = build_signal(&prompts, 5);
    let active = signal.active_samples();
    let noise = pink_noise(signal.samples.len(), 77);
    for snr in [20.0, 10.0, 5.0] {
        let noisy = mix_at_snr(&signal.samples, &active, &noise, snr);
        let mut denoiser = switchboard_audio::SpectralDenoiser::new();
        let s = score_denoise(&signal.samples, &noisy, &signal.labels, |f| {
            denoiser.process(f).unwrap()
        });
        println!(
            "spectral: SI-SDR {:5.1} dB -> {:5.1} dB (gain {:+.1} dB); pauses {:.1} dB quieter; delay {} samples",
            s.input_si_sdr_db,
            s.output_si_sdr_db,
            s.gain_db(),
            s.pause_noise_reduction_db,
            s.delay_samples
        );
        if snr <= 10.0 {
            assert!(
                s.gain_db() > 2.0,
                "SNR gain only {:.1} dB at {snr} dB",
                s.gain_db()
            );
        }
        assert!(
            s.gain_db() > -1.0,
            "made a {snr} dB line worse by {:.1} dB",
            -s.gain_db()
        );
    }
}
