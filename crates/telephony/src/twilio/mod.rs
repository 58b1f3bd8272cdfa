//! Twilio: webhook signatures, TwiML, the Media Streams messages, and the REST calls that place, transfer
//! and end calls.

pub mod rest;
pub mod signature;
pub mod stream;
pub mod twiml;
