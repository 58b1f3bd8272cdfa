//! The wire format of `/ws/audio/{call_id}`, as pure functions: client messages decoded into typed
//! messages (every malformation a clear error), call output encoded as JSON events. The seed's `media` and
//! `transcript` events keep their shape; `start`, `dtmf`, `mark`, `stop`, `clear`, `latency`, `hangup`
//! and `error` complete it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::json;
use switchboard_audio::{InputFormat, MAX_CHUNK_SAMPLES, SampleRate};
use switchboard_session::Outbound;

/// Largest text message accepted: one second of 48 kHz PCM16, base64, plus the envelope.
pub const MAX_MESSAGE_BYTES: usize = MAX_CHUNK_SAMPLES * 2 * 4 / 3 + 1_024;

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// How the client talks: the audio format of this connection, both ways, and whether it echoes
    /// each mark once it has played the audio before it (then what the caller heard is taken from the
    /// echoes).
    Start {
        /// The audio format.
        format: InputFormat,
        /// The client echoes marks once played.
        echo_marks: bool,
    },
    /// Caller audio.
    Media(Vec<u8>),
    /// A key press.
    Dtmf(char),
    /// The client played everything up to this mark.
    Mark(String),
    /// The caller hung up.
    Stop,
}

/// Why a message was refused. The call goes on; the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON, or not an object with an `event`.
    #[error("not a JSON event: {0}")]
    NotJson(String),
    /// An `event` we do not know.
    #[error("unknown event '{0}'; expected start, media, dtmf, mark or stop")]
    UnknownEvent(String),
    /// A known event missing a field or with a wrong one.
    #[error("malformed {event} event: {reason}")]
    Malformed {
        /// Which event.
        event: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Over [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is over the limit of {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
}

#[derive(Deserialize)]
struct Envelope {
    event: String,
    #[serde(default)]
    start: Option<StartBody>,
    #[serde(default)]
    media: Option<MediaBody>,
    #[serde(default)]
    dtmf: Option<DtmfBody>,
    #[serde(default)]
    mark: Option<MarkBody>,
}

#[derive(Deserialize)]
struct StartBody {
    #[serde(default = "default_encoding")]
    encoding: String,
    #[serde(default = "default_rate")]
    sample_rate: u32,
    #[serde(default)]
    echo_marks: bool,
}

fn default_encoding() -> String {
    "pcm16".into()
}

fn default_rate() -> u32 {
    16_000
}

#[derive(Deserialize)]
struct MediaBody {
    payload: String,
}

#[derive(Deserialize)]
struct DtmfBody {
    digit: String,
}

#[derive(Deserialize)]
struct MarkBody {
    name: String,
}

fn malformed(event: &'static str, reason: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed {
        event,
        reason: reason.into(),
    }
}

/// Decodes one text message from the client.
pub fn decode(text: &str) -> Result<ClientMessage, ProtocolError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::TooLarge(text.len()));
    }
    let envelope: Envelope = serde_json::from_str(text)
        .map_err(|e| ProtocolError::NotJson(e.to_string().chars().take(120).collect()))?;
    match envelope.event.as_str() {
        "start" => {
            let start = envelope.start.unwrap_or(StartBody {
                encoding: default_encoding(),
                sample_rate: default_rate(),
                echo_marks: false,
            });
            let format = match (start.encoding.as_str(), start.sample_rate) {
                ("pcm16", rate) => InputFormat::Pcm16(SampleRate::from_hz(rate).map_err(|_| {
                    malformed(
                        "start",
                        format!("pcm16 at {rate} Hz: expected 8000, 16000, 22050, 24000 or 48000"),
                    )
                })?),
                ("mulaw" | "ulaw", 8_000) => InputFormat::Ulaw8k,
                ("alaw", 8_000) => InputFormat::Alaw8k,
                (encoding, rate) => {
                    return Err(malformed(
                        "start",
                        format!(
                            "{} at {rate} Hz: expected pcm16 (8-48 kHz), or mulaw/alaw at 8000 Hz",
                            encoding.chars().take(16).collect::<String>()
                        ),
                    ));
                }
            };
            Ok(ClientMessage::Start {
                format,
                echo_marks: start.echo_marks,
            })
        }
        "media" => {
            let media = envelope
                .media
                .ok_or_else(|| malformed("media", "no media object"))?;
            let bytes = BASE64
                .decode(media.payload.as_bytes())
                .map_err(|e| malformed("media", format!("payload is not base64: {e}")))?;
            if bytes.is_empty() {
                return Err(malformed("media", "empty payload"));
            }
            Ok(ClientMessage::Media(bytes))
        }
        "dtmf" => {
            let digit = envelope
                .dtmf
                .ok_or_else(|| malformed("dtmf", "no dtmf object"))?
                .digit;
            let mut chars = digit.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D') => {
                    Ok(ClientMessage::Dtmf(c))
                }
                _ => Err(malformed("dtmf", "digit must be one of 0-9, *, #, A-D")),
            }
        }
        "mark" => {
            let name = envelope
                .mark
                .ok_or_else(|| malformed("mark", "no mark object"))?
                .name;
            Ok(ClientMessage::Mark(name.chars().take(64).collect()))
        }
        "stop" => Ok(ClientMessage::Stop),
        other => Err(ProtocolError::UnknownEvent(
            other.chars().take(32).collect(),
        )),
    }
}

/// The JSON event for one piece of call output.
pub fn encode(out: &Outbound) -> String {
    let value = match out {
        Outbound::Audio(bytes) => {
            json!({ "event": "media", "media": { "payload": BASE64.encode(bytes) } })
        }
        Outbound::Mark(name) => json!({ "event": "mark", "mark": { "name": name } }),
        Outbound::Clear => json!({ "event": "clear" }),
        Outbound::Transcript(line) => {
            let mut v = serde_json::to_value(line).unwrap_or_default();
            v["event"] = json!("transcript");
            v
        }
        Outbound::Latency(latency) => {
            let mut v = serde_json::to_value(latency).unwrap_or_default();
            v["event"] = json!("latency");
            v
        }
        Outbound::Echo(report) => {
            let mut v = serde_json::to_value(report).unwrap_or_default();
            v["event"] = json!("echo");
            v
        }
        Outbound::Hangup { reason } => json!({ "event": "hangup", "reason": reason.as_str() }),
    };
    value.to_string()
}

/// The JSON event telling the client a message was refused.
pub fn error_event(code: &str, message: &str) -> String {
    json!({ "event": "error", "code": code, "message": message }).to_string()
}

/// Name of a wire format, for the `connected` event.
pub fn format_words(format: InputFormat) -> (&'static str, u32) {
    match format {
        InputFormat::Ulaw8k => ("mulaw", 8_000),
        InputFormat::Alaw8k => ("alaw", 8_000),
        InputFormat::Pcm16(rate) => ("pcm16", rate.hz()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use switchboard_core::Speaker;
    use switchboard_session::TranscriptLine;

    #[test]
    fn seed_media_events_decode() {
        let payload = BASE64.encode([1u8, 2, 3, 4]);
        let msg =
            format!(r#"{{"event":"media","media":{{"payload":"{payload}","timestamp":120}}}}"#);
        assert_eq!(decode(&msg), Ok(ClientMessage::Media(vec![1, 2, 3, 4])));
    }

    #[test]
    fn start_picks_the_format_and_refuses_unknown_ones() {
        assert_eq!(
            decode(r#"{"event":"start","start":{"encoding":"mulaw","sample_rate":8000}}"#),
            Ok(ClientMessage::Start {
                format: InputFormat::Ulaw8k,
                echo_marks: false
            })
        );
        assert_eq!(
            decode(r#"{"event":"start"}"#),
            Ok(ClientMessage::Start {
                format: InputFormat::Pcm16(SampleRate::Hz16000),
                echo_marks: false
            })
        );
        assert_eq!(
            decode(r#"{"event":"start","start":{"echo_marks":true}}"#),
            Ok(ClientMessage::Start {
                format: InputFormat::Pcm16(SampleRate::Hz16000),
                echo_marks: true
            })
        );
        let err = decode(r#"{"event":"start","start":{"encoding":"opus","sample_rate":48000}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected pcm16"), "{err}");
        assert!(
            decode(r#"{"event":"start","start":{"encoding":"mulaw","sample_rate":16000}}"#)
                .is_err()
        );
    }

    #[test]
    fn malformed_messages_are_errors_that_say_why() {
        for (text, expect) in [
            ("not json", "not a JSON event"),
            (r#"{"event":"dance"}"#, "unknown event 'dance'"),
            (r#"{"event":"media"}"#, "no media object"),
            (
                r#"{"event":"media","media":{"payload":"@@@"}}"#,
                "not base64",
            ),
            (
                r#"{"event":"media","media":{"payload":""}}"#,
                "empty payload",
            ),
            (r#"{"event":"dtmf","dtmf":{"digit":"12"}}"#, "digit must be"),
        ] {
            let err = decode(text).unwrap_err().to_string();
            assert!(err.contains(expect), "{text}: {err}");
        }
        let huge = format!(
            r#"{{"event":"media","media":{{"payload":"{}"}}}}"#,
            "A".repeat(MAX_MESSAGE_BYTES)
        );
        assert!(matches!(decode(&huge), Err(ProtocolError::TooLarge(_))));
    }

    #[test]
    fn output_events_have_the_seed_shape() {
        let line = Outbound::Transcript(TranscriptLine {
            speaker: Speaker::Caller,
            text: "hello".into(),
            is_final: true,
            seq: Some(2),
        });
        let v: serde_json::Value = serde_json::from_str(&encode(&line)).unwrap();
        assert_eq!(v["event"], "transcript");
        assert_eq!(v["speaker"], "caller");
        assert_eq!(v["text"], "hello");
        assert_eq!(v["final"], true);
        let v: serde_json::Value =
            serde_json::from_str(&encode(&Outbound::Audio(vec![0, 1]))).unwrap();
        assert_eq!(v["media"]["payload"], "AAE=");
    }

    proptest! {
        #[test]
        fn decoding_never_panics(text in ".{0,400}") {
            let _ = decode(&text);
        }

        #[test]
        fn decoding_never_panics_on_near_valid_events(
            event in prop_oneof!["start", "media", "dtmf", "mark", "stop", "x"],
            body in ".{0,80}",
        ) {
            for text in [
                format!(r#"{{"event":"{event}","{event}":{body}}}"#),
                format!(r#"{{"event":"{event}","{event}":{{"payload":"{body}","digit":"{body}","name":"{body}","encoding":"{body}"}}}}"#),
            ] {
                let _ = decode(&text);
            }
        }
    }
}
