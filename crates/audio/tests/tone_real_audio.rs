//! The answering-machine beep on real audio: Asterisk's recorded beep is found through a telephone line
//! (G.711), and none of the recorded prompts of the Asterisk set (speech, 8 kHz) holds one.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::Path;

use switchboard_audio::ToneDetector;
use switchboard_audio::corpus::{DEFAULT_SOUNDS_DIR, read_wav_16k, through_the_phone};

fn tones(samples: &[i16]) -> Vec<switchboard_audio::Tone> {
    let mut detector = ToneDetector::new();
    let mut found: Vec<_> = samples
        .chunks(320)
        .filter_map(|frame| detector.push(frame))
        .collect();
    // A tone still sounding at the end of the file ends with the silence after it.
    found.extend(detector.push(&[0; 640]));
    found
}

#[test]
fn asterisks_beep_is_found_and_no_recorded_prompt_holds_one() {
    let dir = Path::new(DEFAULT_SOUNDS_DIR);
    if !dir.join("beep.wav").is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "asterisk-core-sounds-en-wav is not installed (scripts/setup.sh installs it)"
        );
        return;
    }
    let beep = through_the_phone(&read_wav_16k(&dir.join("beep.wav")).unwrap()).unwrap();
    let found = tones(&beep);
    println!("beep.wav: {found:?}");
    assert_eq!(found.len(), 1);
    assert!(found[0].duration.as_millis() >= 200);

    let mut prompts = 0;
    let mut seconds = 0.0;
    let mut false_beeps = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // The set's own tones (beep, beeperr, ascending-2tone, …) are not speech.
        if !name.ends_with(".wav") || name.contains("beep") || name.contains("tone") {
            continue;
        }
        let speech = through_the_phone(&read_wav_16k(&path).unwrap()).unwrap();
        prompts += 1;
        seconds += speech.len() as f64 / 16_000.0;
        let found = tones(&speech);
        if !found.is_empty() {
            false_beeps.push((name, found));
        }
    }
    println!(
        "{prompts} prompts, {seconds:.0} s of speech: {} with a tone",
        false_beeps.len()
    );
    assert!(prompts >= 300, "only {prompts} prompts");
    assert!(false_beeps.is_empty(), "{false_beeps:?}");
}
