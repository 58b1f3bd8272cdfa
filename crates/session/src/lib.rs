//! One live call. [`TurnTaking`] is the pure turn-taking state machine (events in, actions out);
//! [`run_call`] runs a call around it, in parts with one job each: the listener (caller audio through the
//! front end and the recogniser, the end of the turn), the speaker (answers through the agent and the
//! voice), playout (audio out on a 20 ms clock, what was heard), the recorder (every line stored before
//! it is announced, retried while the database is away). Transports (the WebSocket, Twilio, AudioSocket,
//! SIP) only translate [`Inbound`] (through [`caller_channel`]) and [`Outbound`].

mod backchannel;
mod call;
mod echo_tap;
mod engines;
pub mod latency;
mod listener;
pub mod machine;
pub mod media;
pub mod phrases;
mod playout;
mod recorder;
mod recording;
mod speaker;
mod speeches;
mod trace;
pub mod turn_cues;
mod voice_out;

pub use backchannel::is_backchannel;
pub use call::{CallError, CallReport, CallSetup, run_call};
pub use engines::{EngineError, Engines};
pub use latency::{TurnClock, TurnLatency};
pub use machine::{
    Action, AnsweredBy, EndReason, Event, Phrase, SpeechId, TurnOptions, TurnTaking,
};
pub use media::{
    CallGone, CallerAudio, CallerFrame, CallerParts, CallerReceiver, CallerSender, EchoReport,
    Inbound, Outbound, TranscriptLine, audio_duration, caller_channel, frame_bytes,
};
pub use phrases::PhraseBook;
pub use voice_out::VoiceEncoder;
