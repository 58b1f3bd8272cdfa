//! Echo suppression on real recorded speech through a simulated echo path, and the point of it: the
//! agent's own voice coming back must not start caller speech in the VAD, while a caller talking over
//! the agent still does.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use switchboard_audio::corpus::{pink_noise, prompts_for_tests};
use switchboard_audio::eval::{EchoPath, build_signal, score_echo, simulate_echo};
use switchboard_audio::vad::{EnergyVad, VadDetector, VadEvent, VadOptions};
use switchboard_audio::{EchoCanceller, EchoOptions};

#[test]
fn erle_on_real_speech_exceeds_20_db() {
    // The same 40 prompts and layout as `switchboard bench audio`, so this pins the README's figures.
    let Some(prompts) = prompts_for_tests(40) else {
        return;
    };
    let far = build_signal(&prompts, 7).samples;
    for path in [
        EchoPath::default(),
        EchoPath {
            delay_ms: 180,
            gain_db: -10.0,
        },
    ] {
        let s = score_echo(&far, path, 3);
        println!(
            "path {} ms {} dB: delay found {:.0} ms, ERLE linear {:.1} dB, with NLP {:.1} dB",
            path.delay_ms, path.gain_db, s.delay_found_ms, s.erle_linear_db, s.erle_total_db
        );
        assert!((s.delay_found_ms - f64::from(path.delay_ms)).abs() <= 10.0);
        assert!(s.erle_total_db >= 20.0, "ERLE {:.1} dB", s.erle_total_db);
    }
}

fn starts(detector: &mut VadDetector, signal: &[i16]) -> usize {
    signal
        .chunks_exact(320)
        .filter(|f| {
            matches!(
                detector.process(f).unwrap(),
                Some(VadEvent::SpeechStarted { .. })
            )
        })
        .count()
}

#[test]
fn the_agents_echo_is_not_caller_speech_but_a_caller_talking_over_it_is() {
    let Some(prompts) = prompts_for_tests(12) else {
        return;
    };
    let (agent_prompts, caller_prompts) = prompts.split_at(8);
    let far = build_signal(agent_prompts, 2).samples;
    // What comes back: the echo plus the line's own noise (about -66 dBFS), as on any real line.
    let echo = simulate_echo(&far, EchoPath::default(), 4);
    let hiss = pink_noise(echo.len(), 8);
    let echo: Vec<i16> = echo
        .iter()
        .zip(&hiss)
        .map(|(e, n)| (e + n * 15.0).round() as i16)
        .collect();
    let vad = || {
        VadDetector::new(
            Box::new(EnergyVad::new(VadOptions::energy_margin_db(2))),
            VadOptions::for_sensitivity(2),
        )
    };

    let raw_starts = starts(&mut vad(), &echo);
    let mut aec = EchoCanceller::new(EchoOptions::default());
    let mut cleaned = echo.clone();
    for (f, n) in far.chunks(320).zip(cleaned.chunks_mut(320)) {
        aec.push_reference(f);
        aec.process(n);
    }
    // The first seconds are the filter learning the path; judge after them.
    let settled = 16_000 * 4;
    let after_starts = starts(&mut vad(), &cleaned[settled..]);
    println!("echo alone: {raw_starts} speech starts without suppression, {after_starts} after it");
    assert!(
        raw_starts >= 5,
        "the test echo should fool an unprotected VAD"
    );
    assert_eq!(after_starts, 0, "the agent's echo was heard as the caller");

    // Double talk: the caller speaks over the agent 8 s in; that speech must survive.
    let caller = &caller_prompts[0].samples;
    let at = 16_000 * 8;
    let mut mixed = echo.clone();
    for (m, &c) in mixed[at..].iter_mut().zip(caller) {
        *m = m.saturating_add(c);
    }
    let mut aec = EchoCanceller::new(EchoOptions::default());
    for (f, n) in far.chunks(320).zip(mixed.chunks_mut(320)) {
        aec.push_reference(f);
        aec.process(n);
    }
    let span = at..at + caller.len();
    let kept: f64 = mixed[span.clone()]
        .iter()
        .map(|&s| f64::from(s).powi(2))
        .sum();
    let spoken: f64 = caller.iter().map(|&s| f64::from(s).powi(2)).sum();
    let change_db = 10.0 * (kept / spoken).log10();
    println!("caller speech over the agent: {change_db:+.1} dB after suppression");
    assert!(
        change_db > -3.0,
        "the caller's own speech was suppressed by {change_db:.1} dB"
    );
    assert!(
        starts(&mut vad(), &mixed[settled..]) >= 1,
        "the caller talking over the agent was not heard"
    );
}
