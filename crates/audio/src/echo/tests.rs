//! The canceller on synthetic echoes: delays found, echoes cancelled and suppressed (also after the delay
//! moves), a line with no echo and a quiet caller left alone.

use super::*;
use crate::corpus::Rng;

/// `near` through a default canceller fed `far` in step, 20 ms at a time.
fn cancelled(far: &[i16], near: &[i16]) -> (EchoCanceller, Vec<i16>) {
    let mut aec = EchoCanceller::new(EchoOptions::default());
    let mut out = near.to_vec();
    for (f, n) in far.chunks(320).zip(out.chunks_mut(320)) {
        aec.push_reference(f);
        aec.process(n);
    }
    (aec, out)
}

fn energy(x: &[i16]) -> f64 {
    x.iter().map(|&s| f64::from(s).powi(2)).sum()
}

#[test]
fn silence_in_gives_silence_out_and_nothing_panics_without_a_reference() {
    let mut aec = EchoCanceller::new(EchoOptions::default());
    let mut frame = [0i16; 320];
    for _ in 0..100 {
        aec.process(&mut frame);
    }
    assert!(frame.iter().all(|&s| s == 0));
    let mut odd = [5i16; 100];
    aec.process(&mut odd);
}

#[test]
fn a_synthetic_echo_is_cancelled_and_its_delay_found() {
    // Far end: noise bursts; echo: 80 ms later, filtered and 10 dB down.
    let mut rng = Rng::new(11);
    let far: Vec<i16> = (0..16_000 * 8)
        .map(|n| {
            if (n / 8000) % 2 == 0 {
                (rng.gaussian() * 3000.0) as i16
            } else {
                0
            }
        })
        .collect();
    let delay = 1280;
    let h = [0.2f32, 0.25, 0.1, -0.05];
    let mut near = vec![0i16; far.len()];
    for n in 0..far.len() {
        let mut y = 0.0;
        for (k, hk) in h.iter().enumerate() {
            if n >= delay + k {
                y += hk * f32::from(far[n - delay - k]);
            }
        }
        near[n] = y as i16;
    }
    let mut aec = EchoCanceller::new(EchoOptions {
        nlp: false,
        ..EchoOptions::default()
    });
    let mut out = near.clone();
    for (f, n) in far.chunks(320).zip(out.chunks_mut(320)) {
        aec.push_reference(f);
        aec.process(n);
    }
    let tail = far.len() * 3 / 4;
    let e_in: f64 = near[tail..].iter().map(|&s| f64::from(s).powi(2)).sum();
    let e_out: f64 = out[tail..].iter().map(|&s| f64::from(s).powi(2)).sum();
    let erle = 10.0 * (e_in / e_out.max(1.0)).log10();
    assert_eq!(aec.stats().delay_samples, delay, "delay estimate");
    assert!(erle > 20.0, "linear ERLE only {erle:.1} dB");
    // With the non-linear processor, over the whole signal (convergence included), as a call reports.
    let (aec, _) = cancelled(&far, &near);
    let reported = aec.stats().erle_db().unwrap();
    assert!(reported > 20.0, "reported ERLE {reported:.1} dB");
    assert!(!aec.stats().no_echo);
}

/// Speech-like bursts: noise under a syllable-rate envelope, in talk spurts and pauses of random
/// lengths (0.3–1.2 s), as two people talking independently would.
fn bursts(seed: u64, seconds: usize, level: f32) -> Vec<i16> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(16_000 * seconds);
    let mut talking = seed.is_multiple_of(2);
    while out.len() < 16_000 * seconds {
        let len = (4_800.0 + rng.next_f64() * 14_400.0) as usize;
        let syllables = 3.0 + rng.next_f64() as f32 * 2.0;
        for n in 0..len {
            let envelope = ((n as f32 / 16_000.0) * std::f32::consts::PI * syllables)
                .sin()
                .abs();
            out.push(if talking {
                (rng.gaussian() as f32 * level * envelope) as i16
            } else {
                0
            });
        }
        talking = !talking;
    }
    out.truncate(16_000 * seconds);
    out
}

/// What a line returns of `far`: the same audio `delay` samples late, 6 dB down.
fn echo_of(far: &[i16], delay: usize) -> Vec<i16> {
    (0..far.len())
        .map(|n| if n >= delay { far[n - delay] / 2 } else { 0 })
        .collect()
}

#[test]
fn a_line_that_returns_no_echo_is_left_alone_and_a_quiet_caller_is_never_suppressed() {
    // The agent talks loud; the caller, 12 dB quieter, talks at the same time; nothing comes back.
    let far = bursts(1, 8, 6000.0);
    let near = bursts(4, 8, 1500.0);
    let (aec, out) = cancelled(&far, &near);
    assert!(aec.stats().no_echo, "{:?}", aec.stats());
    // Over the last 4 s the caller comes through whole.
    let tail = 16_000 * 4;
    let kept = 10.0 * (energy(&out[tail..]) / energy(&near[tail..])).log10();
    assert!(kept > -1.0, "the caller lost {kept:.1} dB");
}

#[test]
fn a_reference_that_comes_in_behind_the_callers_audio_still_cancels_the_echo() {
    // As in a live call: the agent's audio reaches the canceller 100 ms after the caller's audio of the
    // same moment, and its echo comes back 6 dB down, 200 ms after it was sent (120 ms on the line
    // plus the 100 ms the reference trails by, less a frame of queueing).
    let far = bursts(5, 8, 6000.0);
    let delay = 3200;
    let near = echo_of(&far, delay);
    let mut aec = EchoCanceller::new(EchoOptions::default());
    let mut out = near.clone();
    let frames: Vec<&[i16]> = far.chunks(320).collect();
    for (i, n) in out.chunks_mut(320).enumerate() {
        aec.process(n);
        if i >= 5 {
            aec.push_reference(frames[i - 5]);
        }
    }
    let stats = aec.stats();
    assert_eq!(stats.delay_samples, delay, "{stats:?}");
    let erle = stats.erle_db().unwrap();
    assert!(erle > 20.0, "ERLE {erle:.1} dB");
}

#[test]
fn a_moved_echo_delay_is_suppressed_from_the_first_syllable() {
    // As on a line whose jitter buffers deepen and drain under load: the echo comes back 200 ms late,
    // then, from 6 s in, 100 ms sooner, then 80 ms later than at first. The canceller has learned the
    // first delay; at each speech's start after a move, its filter looks in the wrong place.
    let far = bursts(3, 16, 6000.0);
    let delay_at = |n: usize| match n {
        n if n < 16_000 * 6 => 3200,
        n if n < 16_000 * 11 => 1600,
        _ => 4480,
    };
    let near: Vec<i16> = (0..far.len())
        .map(|n| n.checked_sub(delay_at(n)).map_or(0, |m| far[m] / 2))
        .collect();
    let (_, out) = cancelled(&far, &near);
    suppressed_every_100_ms_from(16_000 * 6, &near, &out);
}

/// Every 100 ms from sample `from` on, what is left of the echo in `out` is more than 20 dB below the
/// echo itself in `near` (a VAD would hear it as speech above that).
fn suppressed_every_100_ms_from(from: usize, near: &[i16], out: &[i16]) {
    for start in (from..near.len() - 1_600).step_by(1_600) {
        let span = start..start + 1_600;
        let echo = energy(&near[span.clone()]);
        if echo < 1e3 * 1_600.0 {
            continue;
        }
        let left = 10.0 * (energy(&out[span]) / echo).log10();
        assert!(
            left < -20.0,
            "at {:.1} s only {left:.1} dB of the echo was suppressed",
            start as f64 / 16_000.0
        );
    }
}

#[test]
fn before_the_delay_is_known_an_echo_after_the_agent_stops_is_still_suppressed() {
    // Echo 200 ms late and 6 dB down: longer than the filter's span before the delay is found.
    let far = bursts(2, 2, 6000.0);
    let delay = 3200;
    let near = echo_of(&far, delay);
    let (_, out) = cancelled(&far, &near);
    let left = 10.0 * (energy(&out) / energy(&near)).log10();
    assert!(
        left < -20.0,
        "only {left:.1} dB suppressed in the first 2 s"
    );
}

/// `near` (the echo of `far`, `delay_at` samples late at each sample) through a canceller that searches up
/// to 600 ms, as calls do; told at `restart` (a sample index) that the streams were lined up again.
fn cancelled_across_a_jump(
    far: &[i16],
    delay_at: impl Fn(usize) -> usize,
    restart: Option<usize>,
) -> (EchoCanceller, Vec<i16>, Vec<i16>) {
    let near: Vec<i16> = (0..far.len())
        .map(|n| n.checked_sub(delay_at(n)).map_or(0, |m| far[m] / 2))
        .collect();
    let mut aec = EchoCanceller::new(EchoOptions {
        max_delay_blocks: 60,
        ..EchoOptions::default()
    });
    let mut out = near.clone();
    for (i, (f, n)) in far.chunks(320).zip(out.chunks_mut(320)).enumerate() {
        if restart == Some(i * 320) {
            aec.restart_delay_search();
        }
        aec.push_reference(f);
        aec.process(n);
    }
    (aec, near, out)
}

#[test]
fn after_the_streams_are_lined_up_again_the_echo_is_found_afresh_and_suppressed_throughout() {
    // The echo comes back 200 ms late; at 8 s the streams are lined up again after a stall, and from
    // there the same echo is 480 ms late, more than the suppressor's watch around the old delay.
    let far = bursts(6, 20, 6000.0);
    let jump = 16_000 * 8;
    let delay_at = |n: usize| if n < jump { 3200 } else { 7680 };
    let (aec, near, out) = cancelled_across_a_jump(&far, delay_at, Some(jump));
    let stats = aec.stats();
    assert_eq!(stats.delay_samples, 7680, "{stats:?}");
    assert!(!stats.no_echo, "{stats:?}");
    assert_eq!(stats.delay_restarts, 1);
    suppressed_every_100_ms_from(jump, &near, &out);
}
