//! Twilio Media Streams: the JSON text messages of a bidirectional `<Connect><Stream>` WebSocket.
//!
//! Twilio sends `connected`, then `start` (the stream's and call's ids, the tracks, the audio format and
//! the `<Parameter>`s of the TwiML), then `media` (base64 µ-law at 8 kHz, 20 ms per message), `dtmf`,
//! `mark` (an echo of ours, once the audio before it has been played) and finally `stop`. We send `media`,
//! `mark` and `clear` (drop the audio Twilio has queued: barge-in). Numbers Twilio sends as strings
//! ("sequenceNumber": "3") are read whether they come as strings or numbers.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

/// Largest `media` payload accepted, decoded: Twilio sends 160 bytes (20 ms); a second of audio is far
/// beyond any real message and bounds what one malformed message can allocate.
pub const MAX_MEDIA_BYTES: usize = 8_000;

/// One message from Twilio, with the envelope fields every message may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// Order of sending, from 1; `connected` has none.
    pub sequence_number: Option<u64>,
    /// The stream the message belongs to; `connected` has none.
    pub stream_sid: Option<String>,
    /// What it says.
    pub event: Event,
}

/// What a message from Twilio says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The socket is open; `protocol` is "Call".
    Connected {
        /// The protocol named by Twilio.
        protocol: String,
        /// Its version.
        version: String,
    },
    /// The stream's metadata, once, before any media.
    Start(Start),
    /// Caller audio.
    Media(Media),
    /// A key the caller pressed.
    Dtmf {
        /// `0`–`9`, `*`, `#`, `A`–`D`.
        digit: char,
    },
    /// Twilio has played all audio sent before our mark of this name.
    Mark {
        /// The name we gave it.
        name: String,
    },
    /// The stream ended (the call hung up, or the TwiML moved on).
    Stop,
}

/// The `start` message's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The stream (`MZ…`); every message we send names it.
    pub stream_sid: String,
    /// The account (`AC…`).
    pub account_sid: String,
    /// The call (`CA…`), for the REST API.
    pub call_sid: String,
    /// Which audio flows: "inbound", "outbound".
    pub tracks: Vec<String>,
    /// The audio's format; Twilio always sends µ-law at 8 kHz mono.
    pub media_format: MediaFormat,
    /// The `<Parameter>`s of the `<Stream>` TwiML (ours carries the call id).
    pub custom_parameters: BTreeMap<String, String>,
}

/// The audio format named in `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFormat {
    /// "audio/x-mulaw".
    pub encoding: String,
    /// 8000.
    pub sample_rate: u32,
    /// 1.
    pub channels: u32,
}

impl MediaFormat {
    /// Whether this is the one format Media Streams carry and we accept: µ-law, 8 kHz, mono.
    pub fn is_mulaw_8k_mono(&self) -> bool {
        self.encoding.eq_ignore_ascii_case("audio/x-mulaw")
            && self.sample_rate == 8_000
            && self.channels == 1
    }
}

/// A `media` message's audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// "inbound" or "outbound"; absent on single-track streams.
    pub track: Option<String>,
    /// The chunk's number, from 1.
    pub chunk: u64,
    /// Milliseconds from the start of the stream.
    pub timestamp: u64,
    /// µ-law bytes.
    pub payload: Vec<u8>,
}

/// Why a message from Twilio could not be read. The message is dropped and the call goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// Not JSON, or not an object.
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// A field the event needs is missing or has the wrong type.
    #[error("`{event}` message without a valid `{field}`")]
    Missing {
        /// The event.
        event: String,
        /// The field, as a JSON path.
        field: &'static str,
    },
    /// An `event` this protocol does not have.
    #[error("unknown event `{0}`")]
    UnknownEvent(String),
    /// The media payload is not base64.
    #[error("media payload is not base64: {0}")]
    BadPayload(String),
    /// The media payload is larger than any real one.
    #[error("media payload of {0} bytes exceeds {MAX_MEDIA_BYTES}")]
    PayloadTooLarge(usize),
    /// A DTMF digit that is not one.
    #[error("`{0}` is not a DTMF digit")]
    BadDigit(String),
}

/// A number Twilio may send as a string ("3") or as a number.
fn numeric(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn text(value: Option<&Value>) -> Option<String> {
    value?.as_str().map(str::to_owned)
}

/// Reads one text message from Twilio.
pub fn decode(message: &str) -> Result<Inbound, StreamError> {
    let root: Value =
        serde_json::from_str(message).map_err(|e| StreamError::NotJson(e.to_string()))?;
    if !root.is_object() {
        return Err(StreamError::NotJson(
            "a JSON value that is not an object".into(),
        ));
    }
    let name = text(root.get("event")).ok_or_else(|| StreamError::Missing {
        event: "?".into(),
        field: "event",
    })?;
    let missing = |field: &'static str| StreamError::Missing {
        event: name.clone(),
        field,
    };
    let event = match name.as_str() {
        "connected" => Event::Connected {
            protocol: text(root.get("protocol")).unwrap_or_default(),
            version: text(root.get("version")).unwrap_or_default(),
        },
        "start" => {
            let start = root.get("start").ok_or_else(|| missing("start"))?;
            let format = start
                .get("mediaFormat")
                .ok_or_else(|| missing("start.mediaFormat"))?;
            Event::Start(Start {
                stream_sid: text(start.get("streamSid"))
                    .or_else(|| text(root.get("streamSid")))
                    .ok_or_else(|| missing("start.streamSid"))?,
                account_sid: text(start.get("accountSid")).unwrap_or_default(),
                call_sid: text(start.get("callSid")).ok_or_else(|| missing("start.callSid"))?,
                tracks: start
                    .get("tracks")
                    .and_then(Value::as_array)
                    .map(|tracks| {
                        tracks
                            .iter()
                            .filter_map(|t| t.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                media_format: MediaFormat {
                    encoding: text(format.get("encoding"))
                        .ok_or_else(|| missing("start.mediaFormat.encoding"))?,
                    sample_rate: numeric(format.get("sampleRate"))
                        .and_then(|r| u32::try_from(r).ok())
                        .ok_or_else(|| missing("start.mediaFormat.sampleRate"))?,
                    channels: numeric(format.get("channels"))
                        .and_then(|c| u32::try_from(c).ok())
                        .unwrap_or(1),
                },
                custom_parameters: start
                    .get("customParameters")
                    .and_then(Value::as_object)
                    .map(|params| {
                        params
                            .iter()
                            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        }
        "media" => {
            let media = root.get("media").ok_or_else(|| missing("media"))?;
            let encoded = media
                .get("payload")
                .and_then(Value::as_str)
                .ok_or_else(|| missing("media.payload"))?;
            // Base64 of N bytes is about 4N/3 characters: refuse before decoding.
            if encoded.len() / 4 * 3 > MAX_MEDIA_BYTES {
                return Err(StreamError::PayloadTooLarge(encoded.len() / 4 * 3));
            }
            let payload = BASE64
                .decode(encoded)
                .map_err(|e| StreamError::BadPayload(e.to_string()))?;
            Event::Media(Media {
                track: text(media.get("track")),
                chunk: numeric(media.get("chunk")).unwrap_or(0),
                timestamp: numeric(media.get("timestamp")).unwrap_or(0),
                payload,
            })
        }
        "dtmf" => {
            let digit = text(root.get("dtmf").and_then(|d| d.get("digit")))
                .ok_or_else(|| missing("dtmf.digit"))?;
            let mut chars = digit.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_digit() || "*#ABCD".contains(c) => {
                    Event::Dtmf { digit: c }
                }
                _ => return Err(StreamError::BadDigit(digit)),
            }
        }
        "mark" => Event::Mark {
            name: text(root.get("mark").and_then(|m| m.get("name")))
                .ok_or_else(|| missing("mark.name"))?,
        },
        "stop" => Event::Stop,
        other => return Err(StreamError::UnknownEvent(other.chars().take(40).collect())),
    };
    Ok(Inbound {
        sequence_number: numeric(root.get("sequenceNumber")),
        stream_sid: text(root.get("streamSid")),
        event,
    })
}

/// Agent audio for Twilio to play: µ-law 8 kHz bytes.
pub fn media(stream_sid: &str, mulaw: &[u8]) -> String {
    json!({
        "event": "media",
        "streamSid": stream_sid,
        "media": { "payload": BASE64.encode(mulaw) },
    })
    .to_string()
}

/// Asks Twilio to echo `name` back once everything sent before it has been played.
pub fn mark(stream_sid: &str, name: &str) -> String {
    json!({ "event": "mark", "streamSid": stream_sid, "mark": { "name": name } }).to_string()
}

/// Drops the agent audio Twilio has queued (the caller barged in); Twilio echoes pending marks.
pub fn clear(stream_sid: &str) -> String {
    json!({ "event": "clear", "streamSid": stream_sid }).to_string()
}

/// What the order of a stream's messages says about one more message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The next one expected, or the first.
    InOrder,
    /// Some messages never arrived (`missing` of them).
    Gap {
        /// How many sequence numbers were skipped.
        missing: u64,
    },
    /// A number already seen or older: a duplicate or a late message.
    Stale,
}

/// Follows a stream's `sequenceNumber`s so a gap or a duplicate is noticed and logged; Twilio sends over
/// one TCP connection, so either means a fault on its side or in between.
#[derive(Debug, Default, Clone)]
pub struct Sequence {
    last: Option<u64>,
}

impl Sequence {
    /// Records one message's sequence number.
    pub fn observe(&mut self, number: u64) -> Order {
        match self.last {
            Some(last) if number <= last => Order::Stale,
            Some(last) if number > last + 1 => {
                self.last = Some(number);
                Order::Gap {
                    missing: number - last - 1,
                }
            }
            _ => {
                self.last = Some(number);
                Order::InOrder
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn numbers_are_read_from_strings_and_numbers() {
        let a = decode(
            r#"{"event":"mark","sequenceNumber":"7","streamSid":"MZ1","mark":{"name":"a"}}"#,
        )
        .unwrap();
        let b =
            decode(r#"{"event":"mark","sequenceNumber":7,"streamSid":"MZ1","mark":{"name":"a"}}"#)
                .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.sequence_number, Some(7));
    }

    #[test]
    fn malformed_messages_are_errors_that_say_what_is_wrong() {
        assert!(matches!(decode("not json"), Err(StreamError::NotJson(_))));
        assert!(matches!(decode("[1,2]"), Err(StreamError::NotJson(_))));
        assert_eq!(
            decode(r#"{"event":"media","media":{}}"#),
            Err(StreamError::Missing {
                event: "media".into(),
                field: "media.payload"
            })
        );
        assert!(matches!(
            decode(r#"{"event":"media","media":{"payload":"@@@"}}"#),
            Err(StreamError::BadPayload(_))
        ));
        let huge = "A".repeat(20_000);
        assert!(matches!(
            decode(&format!(
                r#"{{"event":"media","media":{{"payload":"{huge}"}}}}"#
            )),
            Err(StreamError::PayloadTooLarge(_))
        ));
        assert_eq!(
            decode(r#"{"event":"dtmf","dtmf":{"digit":"12"}}"#),
            Err(StreamError::BadDigit("12".into()))
        );
        assert_eq!(
            decode(r#"{"event":"hello"}"#),
            Err(StreamError::UnknownEvent("hello".into()))
        );
        let error = decode(r#"{"event":"start","start":{"streamSid":"MZ1"}}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`start` message without a valid `start.mediaFormat`"
        );
    }

    #[test]
    fn outbound_messages_round_trip_through_their_documented_shape() {
        let sent: Value = serde_json::from_str(&media("MZ1", &[0xff, 0x7f, 0x00])).unwrap();
        assert_eq!(sent["event"], "media");
        assert_eq!(sent["streamSid"], "MZ1");
        assert_eq!(sent["media"]["payload"], "/38A");
        let sent: Value = serde_json::from_str(&mark("MZ1", "turn-3")).unwrap();
        assert_eq!(
            sent,
            json!({"event":"mark","streamSid":"MZ1","mark":{"name":"turn-3"}})
        );
        let sent: Value = serde_json::from_str(&clear("MZ1")).unwrap();
        assert_eq!(sent, json!({"event":"clear","streamSid":"MZ1"}));
        // Twilio echoes our mark in the same shape.
        assert_eq!(
            decode(&mark("MZ1", "turn-3")).unwrap().event,
            Event::Mark {
                name: "turn-3".into()
            }
        );
    }

    #[test]
    fn gaps_and_duplicates_in_the_sequence_are_noticed() {
        let mut sequence = Sequence::default();
        assert_eq!(sequence.observe(1), Order::InOrder);
        assert_eq!(sequence.observe(2), Order::InOrder);
        assert_eq!(sequence.observe(2), Order::Stale);
        assert_eq!(sequence.observe(5), Order::Gap { missing: 2 });
        assert_eq!(sequence.observe(4), Order::Stale);
        assert_eq!(sequence.observe(6), Order::InOrder);
    }

    proptest! {
        #[test]
        fn decoding_never_panics(message in ".{0,300}") {
            let _ = decode(&message);
        }

        #[test]
        fn decoding_near_valid_messages_never_panics(
            event in prop_oneof!["connected", "start", "media", "dtmf", "mark", "stop", "clear"],
            field in prop_oneof!["payload", "digit", "name", "mediaFormat", "streamSid", "callSid", "chunk"],
            value in prop_oneof![Just("null".to_string()), Just("[]".to_string()), Just("{}".to_string()), "-?[0-9]{1,25}", "\"[a-zA-Z0-9+/=]{0,40}\""],
        ) {
            for message in [
                format!(r#"{{"event":"{event}","{event}":{{"{field}":{value}}},"sequenceNumber":{value}}}"#),
                format!(r#"{{"event":"{event}","{event}":{value},"streamSid":{value}}}"#),
            ] {
                let _ = decode(&message);
            }
        }
    }
}
