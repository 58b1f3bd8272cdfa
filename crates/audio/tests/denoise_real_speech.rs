//! Noise suppression on real speech in pink noise: SI-SDR gain against the clean speech and pause
//! attenuation, per input SNR, for both engines.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use switchboard_audio::corpus::{mix_at_snr, pink_noise, prompts_for_tests};
use switchboard_audio::eval::{DenoiseScore, build_signal, score_denoise};
use switchboard_audio::{RnnoiseDenoiser, SpectralDenoiser};

/// Scores a suppressor (made fresh per SNR) at 20, 10 and 5 dB, printing each line.
fn scores(
    name: &str,
    mut make: impl FnMut() -> Box<dyn FnMut(&mut [i16])>,
) -> Option<Vec<(f64, DenoiseScore)>> {
    let prompts = prompts_for_tests(15)?;
    let signal = build_signal(&prompts, 5);
    let active = signal.active_samples();
    let noise = pink_noise(signal.samples.len(), 77);
    let mut out = Vec::new();
    for snr in [20.0, 10.0, 5.0] {
        let noisy = mix_at_snr(&signal.samples, &active, &noise, snr);
        let mut process = make();
        let s = score_denoise(&signal.samples, &noisy, &signal.labels, |f| process(f));
        println!(
            "{name}: SI-SDR {:5.1} dB -> {:5.1} dB (gain {:+.1} dB); pauses {:.1} dB quieter; delay {} samples",
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
        out.push((snr, s));
    }
    Some(out)
}

#[test]
fn rnnoise_raises_the_snr_of_noisy_real_speech() {
    let Some(scores) = scores("rnnoise", || {
        let mut d = RnnoiseDenoiser::new().unwrap();
        Box::new(move |f: &mut [i16]| d.process(f).unwrap())
    }) else {
        return;
    };
    for (snr, s) in scores {
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
fn the_spectral_suppressor_helps_noisy_lines_and_does_not_hurt_clean_ones() {
    let Some(scores) = scores("spectral", || {
        let mut d = SpectralDenoiser::new();
        Box::new(move |f: &mut [i16]| d.process(f).unwrap())
    }) else {
        return;
    };
    for (snr, s) in scores {
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
