//! The wire formats a phone call reaches Switchboard through, as pure functions: bytes or text in, typed
//! messages out, and back. Apart from the REST clients ([`twilio::rest`], [`ari`]), the SIP user agent and
//! a SIP call's RTP leg ([`sip::leg`]), nothing here opens a socket or touches a call; the server carries
//! the bytes and
//! feeds the decoded messages to the same call session as `/ws/audio`, so every transport is tested on its
//! documented wire format without a network.
//!
//! - [`twilio`]: the `X-Twilio-Signature` check on webhooks, the TwiML answers, the Media Streams
//!   WebSocket messages (µ-law 8 kHz audio as base64 JSON), and the REST calls (place, redirect, end).
//! - [`audiosocket`]: Asterisk's AudioSocket TCP framing (kind byte, big-endian length, payload).
//! - [`ari`]: Asterisk's REST interface (originate, external media, bridges, redirect, hang-up) and its
//!   Stasis events.
//! - [`sip`]: the SIP user agent (ezk's stack), SDP offer/answer and RTP.

pub mod ari;
pub mod audiosocket;
pub mod sip;
pub mod twilio;
