//! What the turn machine hears and says: the events a call feeds it and the actions it asks for.

/// Identifies one thing the agent says, so that cancelling it and reports of its playback cannot be
/// confused with another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct SpeechId(pub u64);

/// Fixed things the agent says, served from the phrase cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phrase {
    /// The opening line.
    Greeting,
    /// "Are you still there?" after a silence.
    Reprompt,
    /// "One moment please" while a slow answer is on its way.
    Filler,
    /// The answer did not come in time.
    Apology,
    /// The caller stayed silent; the agent hangs up.
    SilenceGoodbye,
    /// The call reached MAX_CONVERSATION_TURNS.
    LimitGoodbye,
    /// Left on an answering machine after its beep (AMD=leave_message).
    MachineMessage,
}

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The caller hung up (or the transport closed).
    CallerHungUp,
    /// The agent ended the call (the caller said goodbye).
    AgentEnded(String),
    /// Handed to a person.
    Transferred(String),
    /// The caller stayed silent through every reprompt.
    NoResponse,
    /// MAX_CONVERSATION_TURNS reached.
    TurnLimit,
    /// MAX_CALL_DURATION_S reached.
    DurationLimit,
    /// Ended through the API.
    EndedByApi,
    /// An answering machine took the call the agent placed (AMD).
    AnsweringMachine,
}

impl EndReason {
    /// The word stored with the call and shown in the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            EndReason::CallerHungUp => "caller_hung_up",
            EndReason::AgentEnded(_) => "agent_ended",
            EndReason::Transferred(_) => "transferred",
            EndReason::NoResponse => "no_response",
            EndReason::TurnLimit => "turn_limit",
            EndReason::DurationLimit => "duration_limit",
            EndReason::EndedByApi => "ended_by_api",
            EndReason::AnsweringMachine => "answering_machine",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The transport is up: the caller can hear us.
    Connected,
    /// The caller began speaking (VAD).
    CallerSpeechStarted,
    /// The caller stopped speaking (VAD, after its minimum silence): the end of a turn, unless they go on.
    CallerSpeechEnded,
    /// The caller pressed a key on their phone (0-9, `*`, `#`, A-D).
    CallerKey(char),
    /// The final transcript of the utterance that just ended.
    CallerTranscribed {
        /// What they said; empty when the recogniser heard no words.
        text: String,
    },
    /// The first audio of a speech went out.
    SpeechAudible(SpeechId),
    /// A speech finished playing, or was cut.
    SpeechFinished(SpeechId),
    /// The agent could not produce an answer for this speech.
    ReplyFailed(SpeechId),
    /// The agent's answer asked to end the call once it has been said (goodbye, transfer).
    AgentWantsToEnd(EndReason),
    /// The caller hung up or the API ended the call.
    Ended(EndReason),
    /// A steady tone (an answering machine's beep) just ended on the caller's line.
    LineTone,
    /// Time passed (the session is ticked a few times a second).
    Tick,
}

/// What the session asks its tasks to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Play a cached phrase.
    Say {
        /// Its id.
        speech: SpeechId,
        /// Which phrase.
        phrase: Phrase,
    },
    /// Have the agent answer the caller's words and speak the answer.
    Reply {
        /// The answer's id.
        speech: SpeechId,
        /// What the caller said.
        caller_text: String,
        /// The words continue a turn the agent had started to answer (and whose answer was cancelled):
        /// `caller_text` holds that turn's words too, and the agent answers them anew, as one turn.
        continues: bool,
        /// `caller_text` is digits the caller typed on the keypad, not words.
        keyed: bool,
    },
    /// Stop a speech now: cancel its generation and drop its queued audio (barge-in, timeout).
    Cancel(SpeechId),
    /// Who answered a call the agent placed (AMD): store it on the call.
    AnsweredBy(super::AnsweredBy),
    /// End the call.
    Hangup(EndReason),
}
