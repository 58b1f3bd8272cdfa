//! The turn-taking brain of a call: events in, actions out, no I/O. Every rule about who speaks when
//! (greeting, end of turn, barge-in, backchannels, silence, slow answers, the turn limit, hanging up) lives
//! here, so each is a plain unit test on a hand-made timeline.

use std::time::{Duration, Instant};

use crate::backchannel::is_backchannel;

mod events;
mod keypad;
mod screen;

pub use events::{Action, EndReason, Event, Phrase, SpeechId};
use keypad::Keypad;
pub use screen::AnsweredBy;
use screen::Screen;

/// How long the goodbye at MAX_CALL_DURATION_S may take before the line is dropped.
const GOODBYE_GRACE: Duration = Duration::from_secs(30);
/// A caller who starts again this soon after the end of their speech, before any of the answer to it
/// is heard, is taken to go on with the same turn (a pause at a comma: "At my house, 12 Oak Avenue,
/// Portland."), not to start a new one. Once the answer is heard it stands: the caller heard it.
const GOES_ON_WITHIN: Duration = Duration::from_millis(800);

/// Turn-taking settings (CallsConfig and VAD), each with the default a call runs with.
#[derive(Debug, Clone, Copy)]
pub struct TurnOptions {
    /// Caller speech over the agent that interrupts it (500 ms).
    pub barge_in_min_speech: Duration,
    /// Silence before "are you still there?" (8 s).
    pub silence_reprompt: Duration,
    /// Reprompts before hanging up (2).
    pub silence_max_reprompts: u32,
    /// Wait for an answer's first audio before a filler (2 s).
    pub filler_after: Duration,
    /// Wait for an answer's first audio before the apology (RESPONSE_TIMEOUT_MS, 5 s).
    pub response_timeout: Duration,
    /// Caller turns before a polite hang-up (MAX_CONVERSATION_TURNS, 50).
    pub max_turns: u32,
    /// Call length before a polite hang-up (MAX_CALL_DURATION_S, 1 h).
    pub max_duration: Duration,
    /// Keys typed count as entered this long after the last one (KEYPAD_PAUSE_MS, 3 s).
    pub keypad_pause: Duration,
}

impl Default for TurnOptions {
    fn default() -> Self {
        Self {
            barge_in_min_speech: Duration::from_millis(500),
            silence_reprompt: Duration::from_secs(8),
            silence_max_reprompts: 2,
            filler_after: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
            max_turns: 50,
            max_duration: Duration::from_secs(3_600),
            keypad_pause: Duration::from_secs(3),
        }
    }
}

impl TurnOptions {
    /// The call settings of the configuration.
    pub fn from_config(config: &switchboard_core::Config) -> Self {
        let calls = &config.calls;
        Self {
            barge_in_min_speech: calls.barge_in_min_speech,
            silence_reprompt: calls.silence_reprompt,
            silence_max_reprompts: calls.silence_max_reprompts,
            filler_after: calls.filler_after,
            response_timeout: calls.response_timeout,
            max_turns: calls.max_conversation_turns,
            max_duration: calls.max_duration,
            keypad_pause: calls.keypad_pause,
        }
    }
}

/// What the agent's side of the line is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agent {
    /// Nothing queued: waiting for the caller.
    Listening,
    /// An answer is being prepared; nothing audible yet.
    Thinking {
        speech: SpeechId,
        since: Instant,
        filler: bool,
    },
    /// A speech is playing (an answer or a phrase).
    Speaking {
        speech: SpeechId,
        interruptible: bool,
    },
}

/// Caller words not answered on their own, because the caller went on: they open the next turn.
#[derive(Debug, Clone, PartialEq)]
struct Held {
    text: String,
    /// The answer to them that was started, when one was (it is cancelled once the rest arrives).
    answered_by: Option<SpeechId>,
}

/// The turn-taking state of one call.
#[derive(Debug)]
pub struct TurnTaking {
    options: TurnOptions,
    agent: Agent,
    /// Phrases queued behind the current speech (a filler before its answer); each must finish too.
    pending: Vec<SpeechId>,
    /// When the call connected.
    started: Instant,
    caller_speaking_since: Option<Instant>,
    /// When the caller's last utterance ended (VAD).
    caller_quiet_since: Option<Instant>,
    /// The words of the caller's last turn and the answer to them, while that answer is current.
    last_turn: Option<Held>,
    /// Words the caller went on from (see [`GOES_ON_WITHIN`]).
    held: Option<Held>,
    /// The caller's last utterance ended and its transcript has not come yet: the caller is not silent,
    /// the recogniser is slow (a loaded node), and asking "are you still there?" would talk over the
    /// answer to their words.
    transcribing: bool,
    quiet_since: Instant,
    /// Keys the caller is typing.
    keypad: Keypad,
    /// Listening for who answered a call the agent placed (AMD), before anything is said.
    screen: Option<Screen>,
    /// On a machine, wait for its beep and leave the message (AMD=leave_message) rather than hang up.
    leave_message: bool,
    /// Transcripts still to come of what was heard while screening: not turns of the conversation.
    screened_utterances: u32,
    reprompts: u32,
    turns: u32,
    next_speech: u64,
    ending: Option<EndReason>,
    ended: bool,
}

impl TurnTaking {
    /// A call about to connect.
    pub fn new(options: TurnOptions, now: Instant) -> Self {
        Self {
            options,
            agent: Agent::Listening,
            pending: Vec::new(),
            started: now,
            caller_speaking_since: None,
            caller_quiet_since: None,
            last_turn: None,
            held: None,
            transcribing: false,
            quiet_since: now,
            keypad: Keypad::default(),
            screen: None,
            leave_message: false,
            screened_utterances: 0,
            reprompts: 0,
            turns: 0,
            next_speech: 0,
            ending: None,
            ended: false,
        }
    }

    /// Caller turns so far.
    pub fn turns(&self) -> u32 {
        self.turns
    }

    /// Whether the call has ended.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Takes one event; returns what to do, in order.
    pub fn on_event(&mut self, event: Event, now: Instant) -> Vec<Action> {
        if self.ended {
            return Vec::new();
        }
        if self.screen.is_some()
            && matches!(
                event,
                Event::Connected
                    | Event::CallerSpeechStarted
                    | Event::CallerSpeechEnded
                    | Event::CallerTranscribed { .. }
                    | Event::CallerKey(_)
                    | Event::LineTone
                    | Event::Tick
            )
        {
            return self.on_screening(event, now);
        }
        match event {
            Event::Connected => self.say(Phrase::Greeting, false, now),
            Event::LineTone => Vec::new(),
            Event::CallerSpeechStarted => {
                self.caller_speaking_since = Some(now);
                self.on_caller_went_on(now)
            }
            Event::CallerSpeechEnded => {
                self.caller_speaking_since = None;
                self.caller_quiet_since = Some(now);
                self.transcribing = true;
                self.quiet_since = now;
                Vec::new()
            }
            Event::CallerTranscribed { text } => self.on_transcript(text, now),
            Event::CallerKey(key) => self.on_key(key, now),
            Event::SpeechAudible(id) => {
                if let Agent::Thinking { speech, .. } = self.agent
                    && speech == id
                {
                    self.agent = Agent::Speaking {
                        speech: id,
                        interruptible: true,
                    };
                }
                Vec::new()
            }
            Event::SpeechFinished(id) => self.on_finished(id, now),
            Event::ReplyFailed(id) => match self.agent {
                Agent::Thinking { speech, .. } if speech == id => {
                    self.say(Phrase::Apology, true, now)
                }
                _ => Vec::new(),
            },
            Event::AgentWantsToEnd(reason) => {
                self.ending.get_or_insert(reason);
                if self.agent == Agent::Listening && self.pending.is_empty() {
                    self.hang_up()
                } else {
                    Vec::new()
                }
            }
            Event::Ended(reason) => {
                self.ended = true;
                vec![Action::Hangup(reason)]
            }
            Event::Tick => self.on_tick(now),
        }
    }

    /// The caller started speaking again. Soon after the end of their last turn, while its answer is
    /// still being prepared (nothing of it heard), they are taking that turn on: the answer is
    /// cancelled before it is heard and the turn's words are held to open the turn now starting. (If
    /// that turn brings no words, or only "mhm", the held words are answered again on their own.)
    fn on_caller_went_on(&mut self, now: Instant) -> Vec<Action> {
        let Some(last) = &self.last_turn else {
            return Vec::new();
        };
        let soon = self
            .caller_quiet_since
            .is_some_and(|quiet| now.saturating_duration_since(quiet) <= GOES_ON_WITHIN);
        let unheard = matches!(self.agent, Agent::Thinking { speech, .. } if Some(speech) == last.answered_by);
        if !(soon && unheard && self.held.is_none() && self.ending.is_none()) {
            return Vec::new();
        }
        self.held = self.last_turn.take();
        self.cancel_current()
    }

    fn on_transcript(&mut self, text: String, now: Instant) -> Vec<Action> {
        if self.screened_utterances > 0 {
            // The far side's greeting, heard while screening the answer.
            self.screened_utterances -= 1;
            self.transcribing = false;
            return Vec::new();
        }
        let words = text.trim();
        self.transcribing = false;
        self.quiet_since = now;
        let no_words = words.is_empty() || !words.chars().any(char::is_alphanumeric);
        let agent_busy = self.agent != Agent::Listening;
        if no_words || ((agent_busy || self.held.is_some()) && is_backchannel(words)) {
            // Nothing, or "mhm" (listening, not a turn). Words held for a turn that did not come are
            // answered on their own, once the caller is quiet.
            return match self.held.take() {
                Some(held) if self.caller_speaking_since.is_none() && self.ending.is_none() => {
                    self.reply(held.text, held.answered_by.is_some(), false, now)
                }
                held => {
                    self.held = held;
                    Vec::new()
                }
            };
        }
        if self.ending.is_some() {
            return Vec::new();
        }
        let (text, answered_by) = match self.held.take() {
            Some(held) => (format!("{} {words}", held.text), held.answered_by),
            None => (words.to_owned(), None),
        };
        if self.caller_speaking_since.is_some() {
            // These words came after the caller had already gone on: they open the turn now starting.
            self.held = Some(Held { text, answered_by });
            return Vec::new();
        }
        self.reply(text, answered_by.is_some(), false, now)
    }

    /// A key: the first of an entry stops the agent's speech (the caller answers on the keypad); the
    /// entry, once ended, is a turn.
    fn on_key(&mut self, key: char, now: Instant) -> Vec<Action> {
        if self.ending.is_some() {
            return Vec::new();
        }
        self.quiet_since = now;
        let speaking = matches!(
            self.agent,
            Agent::Speaking {
                interruptible: true,
                ..
            }
        );
        let mut actions = if speaking && !self.keypad.typing() {
            self.cancel_current()
        } else {
            Vec::new()
        };
        if let Some(entry) = self.keypad.press(key, now) {
            actions.extend(self.reply(entry, false, true, now));
        }
        actions
    }

    /// A turn: whatever the agent was saying gives way to the answer to `text` (`keyed`: digits typed).
    fn reply(&mut self, text: String, continues: bool, keyed: bool, now: Instant) -> Vec<Action> {
        self.reprompts = 0;
        if !continues {
            self.turns += 1;
        }
        let mut actions = self.cancel_current();
        if self.turns > self.options.max_turns {
            actions.extend(self.say(Phrase::LimitGoodbye, false, now));
            self.ending = Some(EndReason::TurnLimit);
            return actions;
        }
        let speech = self.new_speech();
        self.agent = Agent::Thinking {
            speech,
            since: now,
            filler: false,
        };
        // Speech after typed keys is a turn of its own, never their continuation.
        self.last_turn = (!keyed).then(|| Held {
            text: text.clone(),
            answered_by: Some(speech),
        });
        actions.push(Action::Reply {
            speech,
            caller_text: text,
            continues,
            keyed,
        });
        actions
    }

    fn on_finished(&mut self, id: SpeechId, now: Instant) -> Vec<Action> {
        self.pending.retain(|p| *p != id);
        let current = match self.agent {
            Agent::Thinking { speech, .. } | Agent::Speaking { speech, .. } => Some(speech),
            Agent::Listening => None,
        };
        if current == Some(id) {
            self.agent = Agent::Listening;
            self.quiet_since = now;
        }
        if self.agent == Agent::Listening && self.pending.is_empty() && self.ending.is_some() {
            return self.hang_up();
        }
        Vec::new()
    }

    fn on_tick(&mut self, now: Instant) -> Vec<Action> {
        // The call's time is up: a polite goodbye, whatever is going on; and if even that has not ended
        // the call a while later (playout stuck), the line is dropped.
        let lasted = now.saturating_duration_since(self.started);
        if lasted >= self.options.max_duration + GOODBYE_GRACE {
            self.ending = Some(EndReason::DurationLimit);
            return self.hang_up();
        }
        if lasted >= self.options.max_duration && self.ending.is_none() {
            let mut actions = self.cancel_current();
            actions.extend(self.say(Phrase::LimitGoodbye, false, now));
            self.ending = Some(EndReason::DurationLimit);
            return actions;
        }
        // The caller stopped typing: what they typed is entered.
        if self.ending.is_none()
            && let Some(entry) = self.keypad.due(now, self.options.keypad_pause)
        {
            return self.reply(entry, false, true, now);
        }
        // Barge-in: the caller has talked over the agent long enough to mean it.
        if let (
            Some(since),
            Agent::Speaking {
                speech,
                interruptible: true,
            },
        ) = (self.caller_speaking_since, self.agent)
            && now.saturating_duration_since(since) >= self.options.barge_in_min_speech
            && self.ending.is_none()
        {
            self.agent = Agent::Listening;
            self.quiet_since = now;
            let mut actions: Vec<Action> = self.pending.drain(..).map(Action::Cancel).collect();
            actions.push(Action::Cancel(speech));
            return actions;
        }
        if let Agent::Thinking {
            speech,
            since,
            filler,
        } = self.agent
        {
            let waited = now.saturating_duration_since(since);
            if waited >= self.options.response_timeout {
                let mut actions = self.cancel_current();
                actions.extend(self.say(Phrase::Apology, true, now));
                return actions;
            }
            if !filler && waited >= self.options.filler_after {
                self.agent = Agent::Thinking {
                    speech,
                    since,
                    filler: true,
                };
                let id = self.new_speech();
                self.pending.push(id);
                return vec![Action::Say {
                    speech: id,
                    phrase: Phrase::Filler,
                }];
            }
            return Vec::new();
        }
        let quiet = now.saturating_duration_since(self.quiet_since);
        // A transcript that never comes (a recogniser that died) holds the reprompt back only so long.
        let waiting_for_words = self.transcribing && quiet < 2 * self.options.silence_reprompt;
        let silent = self.agent == Agent::Listening
            && self.pending.is_empty()
            && self.caller_speaking_since.is_none()
            && !waiting_for_words
            && !self.keypad.typing()
            && self.ending.is_none()
            && quiet >= self.options.silence_reprompt;
        if silent {
            if self.reprompts < self.options.silence_max_reprompts {
                self.reprompts += 1;
                return self.say(Phrase::Reprompt, true, now);
            }
            self.ending = Some(EndReason::NoResponse);
            return self.say(Phrase::SilenceGoodbye, false, now);
        }
        Vec::new()
    }

    /// Stops whatever the agent is saying or preparing, with any phrase queued in front of it.
    fn cancel_current(&mut self) -> Vec<Action> {
        let mut actions: Vec<Action> = self.pending.drain(..).map(Action::Cancel).collect();
        match self.agent {
            Agent::Thinking { speech, .. } | Agent::Speaking { speech, .. } => {
                actions.push(Action::Cancel(speech));
            }
            Agent::Listening => {}
        }
        self.agent = Agent::Listening;
        actions
    }

    fn say(&mut self, phrase: Phrase, interruptible: bool, now: Instant) -> Vec<Action> {
        let speech = self.new_speech();
        self.agent = Agent::Speaking {
            speech,
            interruptible,
        };
        self.quiet_since = now;
        vec![Action::Say { speech, phrase }]
    }

    fn hang_up(&mut self) -> Vec<Action> {
        self.ended = true;
        let reason = self
            .ending
            .take()
            .unwrap_or(EndReason::AgentEnded(String::new()));
        vec![Action::Hangup(reason)]
    }

    fn new_speech(&mut self) -> SpeechId {
        self.next_speech += 1;
        SpeechId(self.next_speech)
    }
}

#[cfg(test)]
mod tests;
