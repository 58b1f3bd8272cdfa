//! One live call. [`TurnTaking`] is the pure turn-taking state machine (events in, actions out);
//! [`run_call`] runs a call around it: caller audio through the front end and the recogniser, answers
//! through the agent and the voice, audio out on a 20 ms clock, every turn stored before it is announced.
//! Transports (the WebSocket, Twilio, AudioSocket, SIP) only translate [`Inbound`] and [`Outbound`].

mod backchannel;
mod call;
mod engines;
pub mod latency;
mod listener;
pub mod machine;
pub mod media;
pub mod phrases;
mod playout;
mod recorder;
mod speaker;
mod speeches;
mod trace;
pub mod turn_cues;
mod voice_out;

pub use backchannel::is_backchannel;
pub use call::{CallError, CallReport, CallSetup, run_call};
pub use engines::{EngineError, Engines};
pub use latency::{TurnClock, TurnLatency};
pub use machine::{Action, EndReason, Event, Phrase, SpeechId, TurnOptions, TurnTaking};
pub use media::{
    CallGone, CallerReceiver, CallerSender, Inbound, Outbound, TranscriptLine, audio_duration,
    caller_channel, frame_bytes,
};
pub use phrases::PhraseBook;
pub use voice_out::VoiceEncoder;
