//! `switchboard agent-test --audio`: each scenario's caller lines are spoken by a voice (Piper, espeak-ng
//! or Kokoro) as a caller reads them (phone and policy numbers digit by digit, see [`crate::read_aloud`]),
//! optionally with noise, and played through a real call to an in-process server (or
//! `--server`) in real time, over `/ws/audio` or, with `--telephone`, as Twilio's µ-law 8 kHz Media
//! Stream. The stored claim is scored against the scenario, with the questions asked again after their
//! answer, the "that took too long" apologies and the lines cut into two turns.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use serde_json::{Value, json};
use switchboard_agent::{AgentConfig, CallScore, Scenario, score_call};
use switchboard_core::Config;
use switchboard_core::config::TtsEngine;
use switchboard_session::{Phrase, PhraseBook};
use switchboard_speech::tts::{self, TextToSpeech};

use crate::call_server::LocalServer;
use crate::caller::{Script, place_call};
use crate::read_aloud::as_a_caller_says_it;
use crate::wire::{Transport, TransportKind};

/// The voice that speaks the caller's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CallerVoice {
    /// Piper, with TTS_VOICE when Piper is the agent's engine too (en_US-joe-medium).
    Piper,
    /// espeak-ng, a formant voice far from the agent's.
    Espeak,
    /// Kokoro (needs an English voice file in KOKORO_VOICES).
    Kokoro,
}

/// How the scenarios are spoken.
#[derive(Debug, Args)]
pub(crate) struct AudioArgs {
    /// Speak each caller line and play it through a real call, instead of passing text.
    #[arg(long)]
    pub(crate) audio: bool,
    /// The caller's voice (with --audio).
    #[arg(long, value_enum, default_value_t = CallerVoice::Piper)]
    pub(crate) voice: CallerVoice,
    /// Place the calls as Twilio would: µ-law 8 kHz, a telephone's band (with --audio).
    #[arg(long)]
    pub(crate) telephone: bool,
    /// White noise under the caller's speech at this signal-to-noise ratio, in dB (with --audio).
    #[arg(long, value_name = "DB")]
    pub(crate) noise: Option<f64>,
    /// Calls at once (with --audio); each plays in real time.
    #[arg(long, default_value_t = 1)]
    pub(crate) concurrency: usize,
    /// A running Switchboard (http://host:port) to call; without it one is started in this process.
    #[arg(long, value_name = "URL")]
    pub(crate) server: Option<String>,
    /// API key or JWT for --server (supervisor or admin).
    #[arg(long, env = "SWITCHBOARD_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
}

/// A caller line and its speech, 16 kHz.
type SpokenLine = (String, Vec<i16>);

/// One spoken scenario's outcome.
struct Outcome {
    score: CallScore,
    /// Voice-to-voice per turn, seconds.
    voice_to_voice: Vec<f64>,
    report: Value,
}

/// 16 kHz speech of `text` in `voice`.
pub(crate) fn speak(voice: &dyn TextToSpeech, text: &str) -> anyhow::Result<Vec<i16>> {
    let rate = voice.info().sample_rate;
    let mut samples: Vec<f32> = Vec::new();
    voice.synthesize(text, &mut |chunk| {
        if chunk.sample_rate == rate {
            samples.extend_from_slice(&chunk.samples);
        } else {
            samples.extend(tts::resample_for_file(
                &chunk.samples,
                chunk.sample_rate,
                rate,
            ));
        }
        ControlFlow::Continue(())
    })?;
    let at_16k = tts::resample_for_file(&samples, rate, 16_000);
    if at_16k.is_empty() {
        bail!("the caller's voice said nothing for {text:?}");
    }
    Ok(at_16k
        .iter()
        .map(|s| (s.clamp(-1.0, 1.0) * 32_767.0).round() as i16)
        .collect())
}

/// Adds white noise `snr_db` below the speech's loudness (RMS over its voiced frames); deterministic.
fn add_noise(samples: &mut [i16], snr_db: f64, seed: u64) {
    let voiced: Vec<f64> = samples
        .chunks(320)
        .map(|c| (c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .filter(|&rms| rms > 100.0)
        .collect();
    let speech = voiced.iter().sum::<f64>() / voiced.len().max(1) as f64;
    let level = speech / 10f64.powf(snr_db / 20.0);
    let mut state = seed | 1;
    let mut uniform = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for s in samples {
        // The sum of 12 uniforms less 6: close to a unit normal.
        let gaussian: f64 = (0..12).map(|_| uniform()).sum::<f64>() - 6.0;
        *s = (f64::from(*s) + gaussian * level).clamp(-32_768.0, 32_767.0) as i16;
    }
}

pub(crate) fn caller_voice(
    config: &Config,
    voice: CallerVoice,
) -> anyhow::Result<std::sync::Arc<dyn TextToSpeech>> {
    let mut options = tts::options_from_config(config);
    options.engine = match voice {
        CallerVoice::Piper => TtsEngine::Piper,
        CallerVoice::Espeak => TtsEngine::Espeak,
        CallerVoice::Kokoro => TtsEngine::Kokoro,
    };
    // The agent's TTS_VOICE when the engine is the same; else the engine's usual English voice.
    if options.engine != config.tts.engine {
        options.voice = match voice {
            CallerVoice::Piper => "en_US-joe-medium".into(),
            CallerVoice::Espeak => options.espeak_voice.clone(),
            CallerVoice::Kokoro => "af_heart".into(),
        };
    }
    tts::load(&options).with_context(|| format!("loading the caller's voice ({voice:?})"))
}

/// Runs `scenarios` as spoken calls; prints each and the totals; fails under `min_accuracy`.
pub(crate) fn run(
    args: &AudioArgs,
    scenarios: &[Scenario],
    config: &Config,
    min_accuracy: Option<f64>,
    json_out: Option<&PathBuf>,
) -> anyhow::Result<ExitCode> {
    let agent = AgentConfig::from_config(config)?;
    let voice = caller_voice(config, args.voice)?;
    let started = Instant::now();
    let mut spoken: Vec<(Scenario, Vec<SpokenLine>)> = Vec::new();
    for (n, scenario) in scenarios.iter().enumerate() {
        let mut turns = Vec::new();
        for (i, line) in scenario.caller.iter().enumerate() {
            let mut samples = speak(voice.as_ref(), &as_a_caller_says_it(line))?;
            if let Some(snr) = args.noise {
                add_noise(&mut samples, snr, (n * 1_000 + i) as u64 + 1);
            }
            turns.push((line.clone(), samples));
        }
        spoken.push((scenario.clone(), turns));
    }
    eprintln!(
        "spoke {} scenarios with {} in {:.1} s",
        spoken.len(),
        voice.info().engine,
        started.elapsed().as_secs_f64()
    );
    let apology = PhraseBook::new(&agent, switchboard_llm::uses_native_tools(config))
        .text(Phrase::Apology)
        .to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcomes = runtime.block_on(async {
        let (base, token, local) =
            LocalServer::given_or_started(args.server.as_deref(), args.token.as_deref(), config)
                .await?;
        let server_config = local.as_ref().map_or(config, |l| l.config()).clone();
        let kind = if args.telephone {
            TransportKind::Twilio
        } else {
            TransportKind::Websocket
        };
        let transport = Transport::resolve(kind, &server_config, &base, None)?;
        let today = chrono::Local::now().date_naive();
        let calls = futures_util::stream::iter(spoken.into_iter().map(|(scenario, turns)| {
            let (base, token, transport) = (base.clone(), token.clone(), transport.clone());
            let (agent, apology) = (&agent, &apology);
            async move {
                let script = Script {
                    from: scenario
                        .caller_phone
                        .clone()
                        .unwrap_or_else(|| "+14155550100".into()),
                    source: "switchboard agent-test",
                    turns,
                    turn_timeout: Duration::from_secs(60),
                    fetch_record: true,
                    transport,
                    echo_return: None,
                };
                let call = place_call(&base, &token, &script).await;
                let moved = scenario.on(today, agent);
                call.map(|call| outcome(agent, &moved, call.report, &call.transcript, apology))
                    .with_context(|| format!("scenario {:?}", scenario.name))
            }
        }))
        .buffered(args.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
        if let Some(local) = local {
            local.stop().await;
        }
        anyhow::Ok(calls)
    })?;
    let mut scored = Vec::new();
    for outcome in outcomes {
        let outcome = outcome?;
        print_score(&outcome);
        scored.push(outcome);
    }
    summarise(args, &scored, min_accuracy, json_out)
}

fn outcome(
    agent: &AgentConfig,
    scenario: &Scenario,
    report: Value,
    transcript: &Value,
    apology: &str,
) -> Outcome {
    let claim = report["claim"].as_object().cloned().unwrap_or_default();
    let turns: Vec<(String, String)> = transcript["turns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["speaker"].as_str().unwrap_or_default().to_owned(),
                t["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let score = score_call(
        agent,
        scenario,
        &claim,
        &turns,
        report["end_reason"].as_str(),
        apology,
    );
    let voice_to_voice = report["turns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["voice_to_voice_s"].as_f64())
        .collect();
    Outcome {
        score,
        voice_to_voice,
        report: json!({"report": report, "transcript": transcript["turns"]}),
    }
}

fn print_score(outcome: &Outcome) {
    let s = &outcome.score;
    println!(
        "{:<60} fields {}/{}  asked again {}  apologies {}  cut {}{}",
        s.name,
        s.correct(),
        s.fields.len(),
        s.reasked.len(),
        s.apologies,
        s.cut_lines.len(),
        match s.ended_as_expected {
            Some(false) => "  ENDED OTHERWISE",
            _ => "",
        }
    );
    crate::cmd_agent_test::print_wrong_fields(&s.fields);
    for (line, field) in &s.reasked {
        println!("    asked again after line {line}: {field}");
    }
    for line in &s.cut_lines {
        println!("    line {line} was heard as two turns");
    }
}

fn summarise(
    args: &AudioArgs,
    scored: &[Outcome],
    min_accuracy: Option<f64>,
    json_out: Option<&PathBuf>,
) -> anyhow::Result<ExitCode> {
    let expected: usize = scored.iter().map(|o| o.score.fields.len()).sum();
    let correct: usize = scored.iter().map(|o| o.score.correct()).sum();
    let reasked: usize = scored.iter().map(|o| o.score.reasked.len()).sum();
    let apologies: usize = scored.iter().map(|o| o.score.apologies).sum();
    let cut: usize = scored.iter().map(|o| o.score.cut_lines.len()).sum();
    let ended_otherwise = scored
        .iter()
        .filter(|o| o.score.ended_as_expected == Some(false))
        .count();
    let mut v2v: Vec<f64> = scored
        .iter()
        .flat_map(|o| o.voice_to_voice.clone())
        .collect();
    v2v.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        v2v.get(((v2v.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or("-".to_owned(), |s| format!("{:.0} ms", s * 1_000.0))
    };
    let accuracy = if expected == 0 {
        1.0
    } else {
        correct as f64 / expected as f64
    };
    println!(
        "\nspoken ({:?}{}{}): field accuracy {correct}/{expected} = {:.1} %; questions asked again after their answer: {reasked}; timeout apologies: {apologies}; lines cut into two turns: {cut}; calls that ended otherwise: {ended_otherwise}; voice-to-voice p50 {} p95 {} over {} turns",
        args.voice,
        if args.telephone { ", telephone" } else { "" },
        args.noise
            .map(|n| format!(", noise {n} dB"))
            .unwrap_or_default(),
        accuracy * 100.0,
        pct(0.5),
        pct(0.95),
        v2v.len(),
    );
    if let Some(path) = json_out {
        let all: Vec<Value> = scored
            .iter()
            .map(|o| json!({"score": o.score, "call": o.report}))
            .collect();
        std::fs::write(path, serde_json::to_vec_pretty(&all)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    match min_accuracy {
        Some(min) if accuracy < min => {
            eprintln!(
                "error: field accuracy {:.1} % is below the required {:.1} %",
                accuracy * 100.0,
                min * 100.0
            );
            Ok(ExitCode::FAILURE)
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_sits_the_asked_ratio_under_the_speech() {
        let tone: Vec<i16> = (0..16_000)
            .map(|i| ((i as f64 * 0.05).sin() * 8_000.0) as i16)
            .collect();
        let mut noisy = tone.clone();
        add_noise(&mut noisy, 10.0, 7);
        let power = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        let signal: Vec<f64> = tone.iter().map(|&s| f64::from(s)).collect();
        let noise: Vec<f64> = noisy
            .iter()
            .zip(&tone)
            .map(|(&n, &s)| f64::from(n) - f64::from(s))
            .collect();
        let snr = 10.0 * (power(&signal) / power(&noise)).log10();
        // RMS averaged per frame is a little under the true RMS of a sine: within 1.5 dB.
        assert!((snr - 10.0).abs() < 1.5, "{snr}");
    }
}
