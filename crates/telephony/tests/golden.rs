//! Whole message sequences in the providers' documented wire formats, as they arrive during one call:
//! every message decodes to what it says, in order, and the audio in them is the audio that was sent (a
//! 440 Hz tone, encoded by another implementation: Python's `audioop`).

use std::f64::consts::PI;

use switchboard_audio::g711::ulaw_decode;
use switchboard_telephony::audiosocket::{self, AudioRate, Frame};
use switchboard_telephony::twilio::stream::{self, Event, Order, Sequence};

const TWILIO: &str = include_str!("fixtures/twilio_media_stream.jsonl");
const AUDIOSOCKET: &[u8] = include_bytes!("fixtures/audiosocket_call.bin");

/// The tone's sample `n` as the fixtures wrote it.
fn tone(n: usize) -> f64 {
    8_000.0 * (2.0 * PI * 440.0 * n as f64 / 8_000.0).sin()
}

#[test]
fn a_twilio_media_stream_decodes_in_order() {
    let messages: Vec<stream::Inbound> = TWILIO
        .lines()
        .map(|line| stream::decode(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let names: Vec<&str> = messages
        .iter()
        .map(|m| match &m.event {
            Event::Connected { .. } => "connected",
            Event::Start(_) => "start",
            Event::Media(_) => "media",
            Event::Dtmf { .. } => "dtmf",
            Event::Mark { .. } => "mark",
            Event::Stop => "stop",
        })
        .collect();
    assert_eq!(
        names,
        [
            "connected",
            "start",
            "media",
            "media",
            "media",
            "dtmf",
            "mark",
            "stop"
        ]
    );
    let Event::Start(start) = &messages[1].event else {
        unreachable!()
    };
    assert_eq!(start.stream_sid, "MZ18ad3ab5a668481ce02b83e7395059f0");
    assert_eq!(start.call_sid, "CA58f8e4c1b7e3bc1d2bc5fa3ac1b9e8d4");
    assert!(start.media_format.is_mulaw_8k_mono());
    assert_eq!(
        start.custom_parameters.get("call_id").map(String::as_str),
        Some("01a22536-04fb-7200-8bdf-060a30d148a6")
    );
    let mut sequence = Sequence::default();
    let mut samples = Vec::new();
    for message in &messages[1..] {
        let number = message
            .sequence_number
            .expect("every message after connected is numbered");
        assert_eq!(sequence.observe(number), Order::InOrder);
        assert_eq!(
            message.stream_sid.as_deref(),
            Some("MZ18ad3ab5a668481ce02b83e7395059f0")
        );
        if let Event::Media(media) = &message.event {
            assert_eq!(media.payload.len(), 160, "20 ms of µ-law");
            assert_eq!(media.timestamp, (media.chunk - 1) * 20);
            samples.extend(media.payload.iter().map(|&code| ulaw_decode(code)));
        }
    }
    assert_eq!(samples.len(), 480);
    for (n, &sample) in samples.iter().enumerate() {
        // µ-law keeps about 3 % of the amplitude at this level.
        assert!(
            (f64::from(sample) - tone(n)).abs() < 400.0,
            "sample {n}: {sample} vs {}",
            tone(n)
        );
    }
    assert_eq!(messages[5].event, Event::Dtmf { digit: '1' });
    assert_eq!(
        messages[6].event,
        Event::Mark {
            name: "turn-1".into()
        }
    );
}

#[test]
fn an_audiosocket_call_decodes_in_order_whatever_the_reads() {
    // Read as a TCP stream delivers it: in pieces of any size.
    for piece in [1, 3, 7, 160, AUDIOSOCKET.len()] {
        let mut buffer = Vec::new();
        let mut frames = Vec::new();
        for chunk in AUDIOSOCKET.chunks(piece) {
            buffer.extend_from_slice(chunk);
            while let Some((frame, used)) = audiosocket::decode(&buffer) {
                frames.push(frame.expect("the fixture is well formed"));
                buffer.drain(..used);
            }
        }
        assert!(buffer.is_empty());
        assert_eq!(frames.len(), 6, "uuid, 3 audio, dtmf, hangup");
        assert_eq!(
            frames[0],
            Frame::Uuid("40325ec2-5efd-4bd3-805f-53576e581d13".parse().unwrap())
        );
        let samples: Vec<i16> = frames[1..4]
            .iter()
            .flat_map(|frame| match frame {
                Frame::Audio {
                    rate: AudioRate::Hz8000,
                    pcm,
                } => pcm
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect::<Vec<_>>(),
                other => panic!("not 8 kHz audio: {other:?}"),
            })
            .collect();
        for (n, &sample) in samples.iter().enumerate() {
            assert!((f64::from(sample) - tone(n)).abs() <= 1.0, "sample {n}");
        }
        assert_eq!(frames[4], Frame::Dtmf('5'));
        assert_eq!(frames[5], Frame::Hangup);
    }
}
