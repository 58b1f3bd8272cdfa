//! Twilio: webhook signatures, TwiML, and the Media Streams messages.

pub mod signature;
pub mod stream;
pub mod twiml;
