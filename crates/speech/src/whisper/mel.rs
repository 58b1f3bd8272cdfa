//! The 80-band mel filterbank Whisper was trained with (librosa's `filters.mel(sr=16000, n_fft=400,
//! n_mels=80)`: Slaney mel scale, Slaney area normalisation). whisper.cpp reads it from the model file, and
//! CTranslate2 models do not carry it, so the converter computes it.

/// Mel bands.
pub const N_MELS: usize = 80;
/// FFT bins of a 400-point FFT.
pub const N_FFT_BINS: usize = 201;
const SAMPLE_RATE: f64 = 16_000.0;

fn hz_to_mel(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// Row-major `[N_MELS][N_FFT_BINS]` weights.
pub fn filterbank() -> Vec<f32> {
    let fft_freqs: Vec<f64> = (0..N_FFT_BINS)
        .map(|i| i as f64 * SAMPLE_RATE / 400.0)
        .collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2.0));
    let mel_points: Vec<f64> = (0..N_MELS + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (N_MELS + 1) as f64))
        .collect();
    let mut weights = vec![0f32; N_MELS * N_FFT_BINS];
    for m in 0..N_MELS {
        let (left, center, right) = (mel_points[m], mel_points[m + 1], mel_points[m + 2]);
        let norm = 2.0 / (right - left);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - left) / (center - left);
            let upper = (right - f) / (right - center);
            weights[m * N_FFT_BINS + k] = (lower.min(upper).max(0.0) * norm) as f32;
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_scale_round_trips_and_is_linear_below_1_khz() {
        for hz in [0.0, 300.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6);
        }
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-12);
    }

    #[test]
    fn every_band_is_a_single_triangle_with_unit_area() {
        let w = filterbank();
        for m in 0..N_MELS {
            let row = &w[m * N_FFT_BINS..(m + 1) * N_FFT_BINS];
            assert!(row.iter().any(|&x| x > 0.0), "band {m} is empty");
            // Slaney normalisation: each triangle's area in Hz is 1.
            let area: f64 = row.iter().map(|&x| f64::from(x) * 40.0).sum();
            assert!(m < 10 || (area - 1.0).abs() < 0.15, "band {m} area {area}");
        }
    }
}
