//! Real recorded speech for tests and benchmarks: Debian's asterisk-core-sounds-en-wav prompts (a human
//! speaker, 8 kHz) with their transcripts from asterisk-core-sounds-en, and seeded noise to mix with them.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Resampler, SampleRate};

/// Where Debian installs the prompts.
pub const DEFAULT_SOUNDS_DIR: &str = "/usr/share/asterisk/sounds/en";
/// Where Debian installs the transcripts (gzip).
pub const DEFAULT_TRANSCRIPTS: &str =
    "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz";

/// One prompt: its name, what is said, and the audio at 16 kHz.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// File stem (`auth-incorrect`).
    pub name: String,
    /// Transcript.
    pub text: String,
    /// Samples at 16 kHz.
    pub samples: Vec<i16>,
}

/// Why the corpus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A file could not be read.
    #[error(
        "cannot read {path}: {detail}; install asterisk-core-sounds-en-wav and asterisk-core-sounds-en (make setup)"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

/// Every spoken line of the transcripts (not `[tone]` descriptions), in order: (prompt name, what is said).
pub fn load_transcripts(transcripts_gz: &Path) -> Result<Vec<(String, String)>, CorpusError> {
    let read_err = |e: &dyn std::fmt::Display| CorpusError::Read {
        path: transcripts_gz.to_owned(),
        detail: e.to_string(),
    };
    let file = std::fs::File::open(transcripts_gz).map_err(|e| read_err(&e))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .map_err(|e| read_err(&e))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(name, said)| (name, said.trim()))
        .filter(|(name, said)| {
            !(name.starts_with(';')
                || name.contains('/')
                || said.is_empty()
                || said.starts_with('['))
        })
        .map(|(name, said)| (name.to_owned(), said.to_owned()))
        .collect())
}

/// Prompts that have a spoken transcript (not `[tone]` descriptions), in transcript order, up to `limit`.
pub fn load_prompts(
    sounds_dir: &Path,
    transcripts_gz: &Path,
    limit: usize,
) -> Result<Vec<Prompt>, CorpusError> {
    let mut prompts = Vec::new();
    for (name, said) in load_transcripts(transcripts_gz)? {
        if prompts.len() >= limit {
            break;
        }
        let path = sounds_dir.join(format!("{name}.wav"));
        if !path.is_file() {
            continue;
        }
        let samples = read_wav_16k(&path).map_err(|e| CorpusError::Read {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        prompts.push(Prompt {
            name,
            text: said,
            samples,
        });
    }
    Ok(prompts)
}

/// For tests: the first `limit` prompts from Debian's locations. When they are not installed, `None` (the
/// test skips, saying so), except under `CI=true`, where a missing corpus is a failure, never a skip.
pub fn prompts_for_tests(limit: usize) -> Option<Vec<Prompt>> {
    match load_prompts(
        Path::new(DEFAULT_SOUNDS_DIR),
        Path::new(DEFAULT_TRANSCRIPTS),
        limit,
    ) {
        Ok(prompts) if !prompts.is_empty() => Some(prompts),
        other => {
            let why = other
                .err()
                .map_or_else(|| "no prompts found".to_owned(), |e| e.to_string());
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true and the speech corpus is missing: {why}");
            }
            eprintln!("SKIPPED: {why} (make setup installs it)");
            None
        }
    }
}

/// For tests: MODELS_DIR as the configuration resolves it from this process's environment.
pub fn models_dir_for_tests() -> PathBuf {
    let env = |name: &str| std::env::var(name).ok();
    switchboard_core::Config::from_layers(None, &env)
        .map(|c| c.paths.models_dir)
        .unwrap_or_else(|_| PathBuf::from("models"))
}

/// Reads a mono PCM16 WAV at any supported rate and returns it at 16 kHz.
pub fn read_wav_16k(path: &Path) -> Result<Vec<i16>, String> {
    let mut reader = hound::WavReader::open(path).map_err(|e| e.to_string())?;
    let spec = reader.spec();
    if spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(format!("expected mono 16-bit PCM, found {spec:?}"));
    }
    let rate = SampleRate::from_hz(spec.sample_rate).map_err(|e| e.to_string())?;
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    resample_all(&samples, rate, SampleRate::Hz16000).map_err(|e| e.to_string())
}

/// Resamples a whole signal frame by frame, padding the tail and trimming the filter delay.
pub fn resample_all(
    samples: &[i16],
    from: SampleRate,
    to: SampleRate,
) -> Result<Vec<i16>, crate::AudioError> {
    if from == to {
        return Ok(samples.to_vec());
    }
    let mut resampler = Resampler::new(from, to)?;
    let frame_in = from.frame_samples();
    let mut padded = samples.to_vec();
    let extra_frames = resampler.delay().div_ceil(to.frame_samples()) + 1;
    padded.resize(
        samples.len().div_ceil(frame_in) * frame_in + extra_frames * frame_in,
        0,
    );
    let mut out = Vec::with_capacity(padded.len() * to.frame_samples() / frame_in);
    let mut buf = vec![0i16; to.frame_samples()];
    for frame in padded.chunks_exact(frame_in) {
        let n = resampler.process_frame(frame, &mut buf)?;
        out.extend_from_slice(&buf[..n]);
    }
    let delay = resampler.delay();
    let wanted = samples.len() * to.frame_samples() / frame_in;
    Ok(out[delay.min(out.len())..]
        .iter()
        .copied()
        .take(wanted)
        .collect())
}

/// What a phone line does to 16 kHz speech: down to 8 kHz, G.711 µ-law and back, up to 16 kHz again.
/// The recogniser's benchmark and the voice round-trip test hear audio through it.
pub fn through_the_phone(samples: &[i16]) -> Result<Vec<i16>, crate::AudioError> {
    let narrow = resample_all(samples, SampleRate::Hz16000, SampleRate::Hz8000)?;
    let coded: Vec<i16> = narrow
        .iter()
        .map(|&s| crate::g711::ulaw_decode(crate::g711::ulaw_encode(s)))
        .collect();
    resample_all(&coded, SampleRate::Hz8000, SampleRate::Hz16000)
}

/// A small, seeded random generator (xorshift64*): reproducible noise without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly Gaussian (sum of four uniforms), mean 0, variance 1.
    pub fn gaussian(&mut self) -> f64 {
        (0..4)
            .map(|_| self.next_f64())
            .sum::<f64>()
            .mul_add(3f64.sqrt(), -2.0 * 3f64.sqrt())
    }
}

/// Pink noise (−3 dB per octave, Paul Kellet's filter on white noise): closer to a phone line's hiss and
/// room noise than white noise, and harder for a VAD because much of its energy sits in the speech band.
pub fn pink_noise(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let mut b = [0.0f64; 7];
    (0..len)
        .map(|_| {
            let white = rng.gaussian();
            b[0] = 0.99886 * b[0] + white * 0.0555179;
            b[1] = 0.99332 * b[1] + white * 0.0750759;
            b[2] = 0.96900 * b[2] + white * 0.1538520;
            b[3] = 0.86650 * b[3] + white * 0.3104856;
            b[4] = 0.55000 * b[4] + white * 0.5329522;
            b[5] = -0.7616 * b[5] - white * 0.0168980;
            let pink = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + white * 0.5362;
            b[6] = white * 0.115926;
            pink
        })
        .collect()
}

/// Adds `noise` to `speech` scaled so that speech power over the `active` samples is `snr_db` above
/// the noise power. Saturates instead of wrapping.
pub fn mix_at_snr(speech: &[i16], active: &[bool], noise: &[f64], snr_db: f64) -> Vec<i16> {
    let (sum, count) = speech
        .iter()
        .zip(active)
        .filter(|(_, a)| **a)
        .fold((0.0, 0usize), |(s, n), (x, _)| {
            (s + f64::from(*x).powi(2), n + 1)
        });
    let speech_power = sum / count.max(1) as f64;
    let noise_power = noise.iter().map(|x| x * x).sum::<f64>() / noise.len().max(1) as f64;
    let gain = (speech_power / (noise_power * 10f64.powf(snr_db / 10.0))).sqrt();
    speech
        .iter()
        .zip(noise.iter().cycle())
        .map(|(&s, &n)| (f64::from(s) + gain * n).round().clamp(-32_768.0, 32_767.0) as i16)
        .collect()
}
