//! The audio benchmark behind `cargo bench -p switchboard-audio` and `switchboard bench audio`: what each
//! stage costs per 20 ms frame (single thread) and how well VAD, noise and echo suppression work on real
//! speech. Quality figures come from the same harness as the tests (`eval`).

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use crate::corpus::{Prompt, load_prompts, mix_at_snr, pink_noise};
use crate::eval::{EchoPath, build_signal, score, score_denoise, score_echo};
use crate::front::NoiseSuppression;
use crate::g711::{ulaw_decode_into, ulaw_encode};
use crate::onnx::runtime_library;
use crate::vad::{EnergyVad, SileroVad, VadDetector, VadOptions};
use crate::{
    Agc, AgcOptions, EchoCanceller, EchoOptions, FrontEnd, FrontEndOptions, InputFormat, Resampler,
    RnnoiseDenoiser, SampleRate, SpectralDenoiser,
};

/// Where the benchmark finds its inputs.
#[derive(Debug, Clone)]
pub struct BenchInputs {
    /// MODELS_DIR (Silero and ONNX Runtime).
    pub models_dir: PathBuf,
    /// Prompt WAVs.
    pub sounds_dir: PathBuf,
    /// Prompt transcripts (gzip).
    pub transcripts: PathBuf,
    /// Prompts used for the quality figures.
    pub prompts: usize,
}

/// Cost of one stage.
#[derive(Debug, Clone)]
pub struct StageCost {
    /// Stage name.
    pub stage: String,
    /// Microseconds per 20 ms frame, best of three runs.
    pub micros_per_frame: f64,
}

impl StageCost {
    /// Share of one core one call takes, percent.
    pub fn core_percent(&self) -> f64 {
        self.micros_per_frame / 20_000.0 * 100.0
    }

    /// Calls one core carries with this stage alone.
    pub fn calls_per_core(&self) -> f64 {
        20_000.0 / self.micros_per_frame
    }
}

/// Everything the benchmark measured.
#[derive(Debug, Clone)]
pub struct AudioReport {
    /// Speech used.
    pub speech_seconds: f64,
    /// Audio timed for the costs.
    pub cost_seconds: f64,
    /// Per-stage and whole-chain costs.
    pub costs: Vec<StageCost>,
    /// (engine, SNR dB, precision, recall).
    pub vad: Vec<(String, f64, f64, f64)>,
    /// (engine, input SNR dB, output SI-SDR dB, gain dB, pause attenuation dB).
    pub denoise: Vec<(String, f64, f64, f64, f64)>,
    /// (delay ms, path gain dB, delay found ms, linear ERLE dB, total ERLE dB).
    pub echo: Vec<(u32, f64, f64, f64, f64)>,
    /// Why a part was skipped.
    pub notes: Vec<String>,
}

/// Runs the whole benchmark. Takes about a minute in release mode on 2 cores.
pub fn run(inputs: &BenchInputs) -> Result<AudioReport, String> {
    let prompts = load_prompts(&inputs.sounds_dir, &inputs.transcripts, inputs.prompts)
        .map_err(|e| e.to_string())?;
    if prompts.is_empty() {
        return Err(format!(
            "no prompts found in {}",
            inputs.sounds_dir.display()
        ));
    }
    let signal = build_signal(&prompts, 7);
    let active = signal.active_samples();
    let noise = pink_noise(signal.samples.len(), 42);
    let mut notes = Vec::new();
    if cfg!(debug_assertions) {
        notes.push("debug build: costs are not representative; build with --release".to_owned());
    }
    let runtime = runtime_library(&inputs.models_dir);
    let silero_model = inputs.models_dir.join("silero-vad/silero_vad.onnx");
    let silero = || SileroVad::load(&runtime, &silero_model);
    if let Err(e) = silero() {
        notes.push(format!("Silero VAD not measured: {e}"));
    }

    let noisy10 = mix_at_snr(&signal.samples, &active, &noise, 10.0);
    let mut costs = measure_costs(&noisy10, &prompts, silero().is_ok(), &silero)?;
    if let Ok(engine) = silero() {
        costs.push(StageCost {
            stage: "FULL CHAIN on a caller who speaks 40 % of the time".to_owned(),
            micros_per_frame: caller_side_cost(&prompts, Box::new(engine))?,
        });
    }

    let mut vad = Vec::new();
    let mut denoise = Vec::new();
    for snr in [20.0, 10.0, 5.0] {
        let noisy = mix_at_snr(&signal.samples, &active, &noise, snr);
        if let Ok(engine) = silero() {
            let mut d = VadDetector::new(Box::new(engine), VadOptions::for_sensitivity(2));
            let s = score(&mut d, &noisy, &signal.labels).map_err(|e| e.to_string())?;
            vad.push(("silero".to_owned(), snr, s.precision, s.recall));
        }
        let mut d = VadDetector::new(
            Box::new(EnergyVad::new(VadOptions::energy_margin_db(2))),
            VadOptions::for_sensitivity(2),
        );
        let s = score(&mut d, &noisy, &signal.labels).map_err(|e| e.to_string())?;
        vad.push(("energy".to_owned(), snr, s.precision, s.recall));
        let mut rnnoise = RnnoiseDenoiser::new().map_err(|e| e.to_string())?;
        let d = score_denoise(&signal.samples, &noisy, &signal.labels, |f| {
            let _ = rnnoise.process(f);
        });
        denoise.push((
            "rnnoise".to_owned(),
            snr,
            d.output_si_sdr_db,
            d.gain_db(),
            d.pause_noise_reduction_db,
        ));
        let mut spectral = SpectralDenoiser::new();
        let d = score_denoise(&signal.samples, &noisy, &signal.labels, |f| {
            let _ = spectral.process(f);
        });
        denoise.push((
            "spectral".to_owned(),
            snr,
            d.output_si_sdr_db,
            d.gain_db(),
            d.pause_noise_reduction_db,
        ));
    }
    vad.sort_by(|a, b| a.0.cmp(&b.0));
    denoise.sort_by(|a, b| b.0.cmp(&a.0));

    let mut echo = Vec::new();
    // The last path breaks the double-talk detector's assumption on purpose: it shows where the limit is.
    for path in [
        EchoPath::default(),
        EchoPath {
            delay_ms: 180,
            gain_db: -10.0,
        },
        EchoPath {
            delay_ms: 180,
            gain_db: -6.0,
        },
    ] {
        let s = score_echo(&signal.samples, path, 3);
        echo.push((
            path.delay_ms,
            path.gain_db,
            s.delay_found_ms,
            s.erle_linear_db,
            s.erle_total_db,
        ));
    }
    let cost_seconds = (signal.samples.len() / 320).min(COST_FRAMES) as f64 * 0.02;
    Ok(AudioReport {
        speech_seconds: signal.samples.len() as f64 / 16_000.0,
        cost_seconds,
        costs,
        vad,
        denoise,
        echo,
        notes,
    })
}

/// Frames timed per stage: 30 s.
const COST_FRAMES: usize = 1500;

/// Times `frames` runs of `step`, three times, and keeps the best (least disturbed) run.
fn time_per_frame(frames: usize, mut step: impl FnMut(usize)) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            for i in 0..frames {
                step(i);
            }
            t.elapsed().as_secs_f64() * 1e6 / frames as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn measure_costs(
    noisy16k: &[i16],
    prompts: &[Prompt],
    have_silero: bool,
    silero: &dyn Fn() -> Result<SileroVad, crate::vad::VadError>,
) -> Result<Vec<StageCost>, String> {
    let err = |e: &dyn fmt::Display| e.to_string();
    // Up to 30 s of the noisy speech, as the 8 kHz µ-law a phone line carries, and a far-end reference.
    let frames = COST_FRAMES.min(noisy16k.len() / 320);
    let input8k = crate::corpus::resample_all(
        &noisy16k[..frames * 320],
        SampleRate::Hz16000,
        SampleRate::Hz8000,
    )
    .map_err(|e| err(&e))?;
    let payload: Vec<u8> = input8k.iter().map(|&s| ulaw_encode(s)).collect();
    let reference: Vec<i16> = prompts
        .iter()
        .flat_map(|p| p.samples.iter().copied())
        .cycle()
        .take(frames * 320)
        .collect();
    let frame16 = |i: usize| &noisy16k[i * 320..(i + 1) * 320];
    let mut costs = Vec::new();
    let mut add = |stage: &str, micros: f64| {
        costs.push(StageCost {
            stage: stage.to_owned(),
            micros_per_frame: micros,
        })
    };

    let mut pcm = [0i16; 160];
    add(
        "G.711 µ-law decode (8 kHz)",
        time_per_frame(frames, |i| {
            let _ = ulaw_decode_into(&payload[i * 160..(i + 1) * 160], &mut pcm);
        }),
    );
    let mut up = Resampler::new(SampleRate::Hz8000, SampleRate::Hz16000).map_err(|e| err(&e))?;
    let mut out = [0i16; 320];
    add(
        "resample 8 -> 16 kHz",
        time_per_frame(frames, |i| {
            let _ = up.process_frame(&input8k[i * 160..(i + 1) * 160], &mut out);
        }),
    );
    let mut echo = EchoCanceller::new(EchoOptions::default());
    add(
        "echo suppression",
        time_per_frame(frames, |i| {
            echo.push_reference(&reference[i * 320..(i + 1) * 320]);
            out.copy_from_slice(frame16(i));
            echo.process(&mut out);
        }),
    );
    let mut spectral = SpectralDenoiser::new();
    add(
        "noise suppression (spectral Wiener)",
        time_per_frame(frames, |i| {
            out.copy_from_slice(frame16(i));
            let _ = spectral.process(&mut out);
        }),
    );
    let mut denoiser = RnnoiseDenoiser::new().map_err(|e| err(&e))?;
    add(
        "noise suppression (RNNoise, incl. 16<->48 kHz)",
        time_per_frame(frames, |i| {
            out.copy_from_slice(frame16(i));
            let _ = denoiser.process(&mut out);
        }),
    );
    let mut agc = Agc::new(AgcOptions::default(), 20.0);
    add(
        "AGC",
        time_per_frame(frames, |i| {
            out.copy_from_slice(frame16(i));
            agc.process(&mut out);
        }),
    );
    let mut energy = VadDetector::new(
        Box::new(EnergyVad::new(9.0)),
        VadOptions::for_sensitivity(2),
    );
    add(
        "VAD energy",
        time_per_frame(frames, |i| {
            let _ = energy.process(frame16(i));
        }),
    );
    if have_silero {
        let mut vad = VadDetector::new(
            Box::new(silero().map_err(|e| err(&e))?),
            VadOptions::for_sensitivity(2),
        );
        add(
            "VAD Silero (ONNX Runtime, 1 thread)",
            time_per_frame(frames, |i| {
                let _ = vad.process(frame16(i));
            }),
        );
    }
    let chain = |suppression: NoiseSuppression, silero_vad: bool| -> Result<f64, String> {
        let mut options = FrontEndOptions::full(InputFormat::Ulaw8k, 2);
        options.noise_suppression = suppression;
        let mut front = if silero_vad {
            FrontEnd::new(options, Box::new(silero().map_err(|e| err(&e))?)).map_err(|e| err(&e))?
        } else {
            FrontEnd::with_energy_vad(options, 2).map_err(|e| err(&e))?
        };
        Ok(time_per_frame(frames, |i| {
            front.push_reference(&reference[i * 320..(i + 1) * 320]);
            let _ = front.push_payload(&payload[i * 160..(i + 1) * 160]);
            while let Ok(Some(_)) = front.next_frame() {}
        }))
    };
    if have_silero {
        add(
            "FULL CHAIN: µ-law in, echo + spectral NS + AGC + Silero",
            chain(NoiseSuppression::Spectral, true)?,
        );
        add(
            "full chain with RNNoise instead",
            chain(NoiseSuppression::Rnnoise, true)?,
        );
        add(
            "full chain without noise suppression",
            chain(NoiseSuppression::Off, true)?,
        );
    }
    add(
        "full chain, spectral NS, energy VAD",
        chain(NoiseSuppression::Spectral, false)?,
    );
    Ok(costs)
}

/// The default chain on a caller's side of a call: each utterance followed by 1.5 times its length of line
/// noise (the caller listening), 10 dB SNR, 40 % speech. The energy gate keeps Silero idle in the pauses.
fn caller_side_cost(
    prompts: &[Prompt],
    vad: Box<dyn crate::vad::SpeechProbability>,
) -> Result<f64, String> {
    let mut clean = Vec::new();
    let mut active = Vec::new();
    for p in prompts {
        clean.extend_from_slice(&p.samples);
        active.extend(std::iter::repeat_n(true, p.samples.len()));
        let gap = p.samples.len() * 3 / 2;
        clean.extend(std::iter::repeat_n(0, gap));
        active.extend(std::iter::repeat_n(false, gap));
    }
    let noise = pink_noise(clean.len(), 9);
    let noisy = mix_at_snr(&clean, &active, &noise, 10.0);
    let frames = (noisy.len() / 320).min(COST_FRAMES * 2);
    let input8k = crate::corpus::resample_all(
        &noisy[..frames * 320],
        SampleRate::Hz16000,
        SampleRate::Hz8000,
    )
    .map_err(|e| e.to_string())?;
    let payload: Vec<u8> = input8k.iter().map(|&s| ulaw_encode(s)).collect();
    let mut front = FrontEnd::new(FrontEndOptions::full(InputFormat::Ulaw8k, 2), vad)
        .map_err(|e| e.to_string())?;
    Ok(time_per_frame(frames, |i| {
        let _ = front.push_payload(&payload[i * 160..(i + 1) * 160]);
        while let Ok(Some(_)) = front.next_frame() {}
    }))
}

impl BenchInputs {
    /// The defaults: MODELS_DIR as the configuration resolves it, and Debian's prompt locations.
    pub fn from_config(config: &switchboard_core::Config) -> Self {
        Self {
            models_dir: config.paths.models_dir.clone(),
            sounds_dir: crate::corpus::DEFAULT_SOUNDS_DIR.into(),
            transcripts: crate::corpus::DEFAULT_TRANSCRIPTS.into(),
            prompts: 40,
        }
    }
}

impl fmt::Display for AudioReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Cost per 20 ms frame, one thread (µ-law 8 kHz input, {:.0} s of noisy real speech):
",
            self.cost_seconds
        )?;
        writeln!(
            f,
            "| stage | µs / frame | % of a core per call | calls per core |"
        )?;
        writeln!(f, "|---|---:|---:|---:|")?;
        for c in &self.costs {
            let calls = c.calls_per_core();
            let calls = if calls >= 100_000.0 {
                "> 100000".to_owned()
            } else {
                format!("{calls:.0}")
            };
            writeln!(
                f,
                "| {} | {:.2} | {:.3} | {calls} |",
                c.stage,
                c.micros_per_frame,
                c.core_percent()
            )?;
        }
        writeln!(
            f,
            "\nVAD on {:.0} s of real speech (asterisk prompts) in pink noise, frame-level, sensitivity 2:\n",
            self.speech_seconds
        )?;
        writeln!(f, "| engine | SNR | precision | recall |")?;
        writeln!(f, "|---|---:|---:|---:|")?;
        for (engine, snr, p, r) in &self.vad {
            writeln!(f, "| {engine} | {snr:.0} dB | {p:.3} | {r:.3} |")?;
        }
        writeln!(f, "\nNoise suppression, SI-SDR against the clean speech:\n")?;
        writeln!(
            f,
            "| engine | input SNR | output SI-SDR | gain | pauses attenuated by |"
        )?;
        writeln!(f, "|---|---:|---:|---:|---:|")?;
        for (engine, snr, out, gain, pause) in &self.denoise {
            writeln!(
                f,
                "| {engine} | {snr:.0} dB | {out:.1} dB | {gain:+.1} dB | {pause:.1} dB |"
            )?;
        }
        writeln!(
            f,
            "\nEcho suppression on real speech through a simulated echo path (filtered, reverberant tail):\n"
        )?;
        writeln!(
            f,
            "| path delay | path gain | delay found | ERLE linear filter | ERLE with NLP |"
        )?;
        writeln!(f, "|---:|---:|---:|---:|---:|")?;
        for (delay, gain, found, linear, total) in &self.echo {
            writeln!(
                f,
                "| {delay} ms | {gain:.0} dB | {found:.0} ms | {linear:.1} dB | {total:.1} dB |"
            )?;
        }
        for note in &self.notes {
            writeln!(f, "\nnote: {note}")?;
        }
        Ok(())
    }
}
