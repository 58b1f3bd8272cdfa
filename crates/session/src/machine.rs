//! The turn-taking brain of a call: events in, actions out, no I/O. Every rule about who speaks when
//! (greeting, end of turn, barge-in, backchannels, silence, slow answers, the turn limit, hanging up) lives
//! here, so each is a plain unit test on a hand-made timeline.

use std::time::{Duration, Instant};

use crate::backchannel::is_backchannel;

/// How long the goodbye at MAX_CALL_DURATION_S may take before the line is dropped.
const GOODBYE_GRACE: Duration = Duration::from_secs(30);
/// A caller who starts again this soon after the end of their speech, before any of the answer to it
/// is heard, is taken to go on with the same turn (a pause at a comma: "At my house, 12 Oak Avenue,
/// Portland."), not to start a new one. Once the answer is heard it stands: the caller heard it.
const GOES_ON_WITHIN: Duration = Duration::from_millis(800);

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
    },
    /// Stop a speech now: cancel its generation and drop its queued audio (barge-in, timeout).
    Cancel(SpeechId),
    /// End the call.
    Hangup(EndReason),
}

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
        match event {
            Event::Connected => self.say(Phrase::Greeting, false, now),
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
                    self.reply(held.text, held.answered_by.is_some(), now)
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
        self.reply(text, answered_by.is_some(), now)
    }

    /// A turn: whatever the agent was saying gives way to the answer to `text`.
    fn reply(&mut self, text: String, continues: bool, now: Instant) -> Vec<Action> {
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
        self.last_turn = Some(Held {
            text: text.clone(),
            answered_by: Some(speech),
        });
        actions.push(Action::Reply {
            speech,
            caller_text: text,
            continues,
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
mod tests {
    use super::*;

    /// A call on a controlled clock.
    struct Timeline {
        turns: TurnTaking,
        now: Instant,
    }

    impl Timeline {
        fn new(options: TurnOptions) -> Self {
            let now = Instant::now();
            Self {
                turns: TurnTaking::new(options, now),
                now,
            }
        }
        fn at(&mut self, millis: u64, event: Event) -> Vec<Action> {
            let now = self.now + Duration::from_millis(millis);
            self.turns.on_event(event, now)
        }
        /// Ticks every 100 ms from `from` to `to`, gathering the actions.
        fn ticks(&mut self, from: u64, to: u64) -> Vec<Action> {
            (from..=to)
                .step_by(100)
                .flat_map(|t| self.at(t, Event::Tick))
                .collect()
        }
    }

    fn said(text: &str) -> Event {
        Event::CallerTranscribed { text: text.into() }
    }

    fn greeted() -> Timeline {
        let mut t = Timeline::new(TurnOptions::default());
        assert_eq!(
            t.at(0, Event::Connected),
            [Action::Say {
                speech: SpeechId(1),
                phrase: Phrase::Greeting
            }]
        );
        t.at(3_000, Event::SpeechFinished(SpeechId(1)));
        t
    }

    #[test]
    fn a_caller_turn_gets_an_answer_and_the_answer_plays_to_the_end() {
        let mut t = greeted();
        t.at(3_500, Event::CallerSpeechStarted);
        assert!(t.ticks(3_500, 5_000).is_empty());
        t.at(5_000, Event::CallerSpeechEnded);
        let actions = t.at(5_300, said("My car was hit this morning."));
        assert_eq!(
            actions,
            [Action::Reply {
                speech: SpeechId(2),
                caller_text: "My car was hit this morning.".into(),
                continues: false,
            }]
        );
        t.at(5_900, Event::SpeechAudible(SpeechId(2)));
        assert!(t.ticks(6_000, 9_000).is_empty());
        assert!(t.at(9_000, Event::SpeechFinished(SpeechId(2))).is_empty());
        assert_eq!(t.turns.turns(), 1);
    }

    #[test]
    fn the_greeting_is_not_cut_by_early_caller_noise() {
        let mut t = Timeline::new(TurnOptions::default());
        t.at(0, Event::Connected);
        t.at(200, Event::CallerSpeechStarted);
        assert!(t.ticks(200, 1_500).is_empty());
    }

    #[test]
    fn talking_over_an_answer_for_half_a_second_cancels_it() {
        let mut t = greeted();
        t.at(5_300, said("What is covered?"));
        t.at(5_800, Event::SpeechAudible(SpeechId(2)));
        t.at(6_000, Event::CallerSpeechStarted);
        assert!(t.ticks(6_000, 6_400).is_empty(), "not yet: 400 ms");
        assert_eq!(t.ticks(6_500, 6_500), [Action::Cancel(SpeechId(2))]);
        // The cancelled speech reports its end; the caller's words then get their own answer.
        assert!(t.at(6_520, Event::SpeechFinished(SpeechId(2))).is_empty());
        t.at(7_000, Event::CallerSpeechEnded);
        assert_eq!(
            t.at(7_300, said("No wait, I meant the windscreen.")),
            [Action::Reply {
                speech: SpeechId(3),
                caller_text: "No wait, I meant the windscreen.".into(),
                continues: false,
            }]
        );
    }

    #[test]
    fn a_backchannel_over_the_agent_neither_cancels_nor_gets_an_answer() {
        let mut t = greeted();
        t.at(5_300, said("I had an accident."));
        t.at(5_800, Event::SpeechAudible(SpeechId(2)));
        t.at(6_000, Event::CallerSpeechStarted);
        assert!(t.ticks(6_000, 6_300).is_empty());
        t.at(6_300, Event::CallerSpeechEnded);
        assert!(t.at(6_600, said("Mhm.")).is_empty());
        assert!(t.ticks(6_600, 8_000).is_empty());
        // The same word when the agent is silent is a turn (an answer to a question).
        t.at(8_000, Event::SpeechFinished(SpeechId(2)));
        assert!(matches!(
            t.at(9_000, said("Okay.")).as_slice(),
            [Action::Reply { .. }]
        ));
    }

    #[test]
    fn a_short_real_answer_over_the_agent_replaces_its_speech() {
        let mut t = greeted();
        t.at(5_300, said("I need to report a claim."));
        t.at(5_800, Event::SpeechAudible(SpeechId(2)));
        t.at(6_000, Event::CallerSpeechStarted);
        t.at(6_300, Event::CallerSpeechEnded);
        assert_eq!(
            t.at(6_600, said("Stop.")),
            [
                Action::Cancel(SpeechId(2)),
                Action::Reply {
                    speech: SpeechId(3),
                    caller_text: "Stop.".into(),
                    continues: false,
                }
            ]
        );
    }

    fn reply(speech: u64, text: &str, continues: bool) -> Action {
        Action::Reply {
            speech: SpeechId(speech),
            caller_text: text.into(),
            continues,
        }
    }

    #[test]
    fn a_caller_who_goes_on_after_a_comma_gets_one_answer_to_the_whole_sentence() {
        // Nothing of the answer to the first half heard yet: it is cancelled, the whole is answered.
        let mut t = greeted();
        t.at(3_500, Event::CallerSpeechStarted);
        t.at(5_000, Event::CallerSpeechEnded);
        assert_eq!(
            t.at(5_200, said("At my house.")),
            [reply(2, "At my house.", false)]
        );
        assert_eq!(
            t.at(5_400, Event::CallerSpeechStarted),
            [Action::Cancel(SpeechId(2))]
        );
        t.at(5_420, Event::SpeechFinished(SpeechId(2)));
        t.at(6_800, Event::CallerSpeechEnded);
        assert_eq!(
            t.at(7_000, said("12 Oak Avenue, Portland.")),
            [reply(3, "At my house. 12 Oak Avenue, Portland.", true)]
        );
        assert_eq!(t.turns.turns(), 1);
        // If what followed was only a noise, the first half is answered again, on its own.
        let mut t = greeted();
        t.at(3_500, Event::CallerSpeechStarted);
        t.at(5_000, Event::CallerSpeechEnded);
        t.at(5_200, said("At my house."));
        t.at(5_400, Event::CallerSpeechStarted);
        t.at(5_600, Event::CallerSpeechEnded);
        assert_eq!(t.at(5_800, said("Mhm.")), [reply(3, "At my house.", true)]);
        assert_eq!(t.turns.turns(), 1);

        // The answer was heard before the caller went on: it stands, and the rest is a turn of its own.
        let mut t = greeted();
        t.at(3_500, Event::CallerSpeechStarted);
        t.at(5_000, Event::CallerSpeechEnded);
        t.at(5_200, said("At 12 Oak Avenue."));
        t.at(5_500, Event::SpeechAudible(SpeechId(2)));
        assert!(t.at(5_600, Event::CallerSpeechStarted).is_empty());
        t.at(5_900, Event::CallerSpeechEnded);
        assert_eq!(
            t.at(6_100, said("Portland.")),
            [Action::Cancel(SpeechId(2)), reply(3, "Portland.", false)]
        );
        assert_eq!(t.turns.turns(), 2);
    }

    #[test]
    fn words_transcribed_after_the_caller_went_on_wait_for_the_rest() {
        let mut t = greeted();
        t.at(3_500, Event::CallerSpeechStarted);
        t.at(4_000, Event::CallerSpeechEnded);
        t.at(4_300, Event::CallerSpeechStarted);
        assert!(t.at(4_400, said("Hi.")).is_empty(), "the caller is talking");
        t.at(6_000, Event::CallerSpeechEnded);
        assert_eq!(
            t.at(6_300, said("This is Tom Baker.")),
            [reply(2, "Hi. This is Tom Baker.", false)]
        );
        assert_eq!(t.turns.turns(), 1);

        // What they went on with was no words (a noise): the held words are the turn.
        let mut t = greeted();
        t.at(3_500, Event::CallerSpeechStarted);
        t.at(4_000, Event::CallerSpeechEnded);
        t.at(4_300, Event::CallerSpeechStarted);
        assert!(t.at(4_400, said("My name is Ana Lopez.")).is_empty());
        t.at(4_600, Event::CallerSpeechEnded);
        assert_eq!(
            t.at(4_800, said("")),
            [reply(2, "My name is Ana Lopez.", false)]
        );
    }

    #[test]
    fn a_late_start_is_not_taken_as_going_on() {
        // A start a second after the turn ended is a new turn, even before the answer is heard.
        let mut t = greeted();
        t.at(3_500, Event::CallerSpeechStarted);
        t.at(5_000, Event::CallerSpeechEnded);
        t.at(5_200, said("What is covered?"));
        assert!(t.at(6_000, Event::CallerSpeechStarted).is_empty());
        t.at(6_100, Event::SpeechAudible(SpeechId(2)));
        assert_eq!(t.ticks(6_100, 6_500), [Action::Cancel(SpeechId(2))]);
        t.at(7_000, Event::CallerSpeechEnded);
        assert_eq!(
            t.at(7_300, said("The windscreen.")),
            [reply(3, "The windscreen.", false)]
        );
        assert_eq!(t.turns.turns(), 2);
    }

    #[test]
    fn no_reprompt_while_the_callers_words_are_still_being_transcribed() {
        let mut t = greeted();
        t.at(3_500, Event::CallerSpeechStarted);
        t.at(6_000, Event::CallerSpeechEnded);
        // A loaded node: the transcript takes 10 s. The caller spoke; the agent must not ask whether
        // they are still there.
        assert!(t.ticks(6_100, 16_000).is_empty());
        assert_eq!(
            t.at(16_000, said("My number is 415 555 0100.")),
            [Action::Reply {
                speech: SpeechId(2),
                caller_text: "My number is 415 555 0100.".into(),
                continues: false,
            }]
        );
        // A transcript that never comes holds the reprompt back for twice the silence, not forever.
        let mut t = greeted();
        t.at(3_500, Event::CallerSpeechStarted);
        t.at(4_000, Event::CallerSpeechEnded);
        assert!(t.ticks(4_100, 19_900).is_empty());
        assert!(matches!(
            t.ticks(20_000, 20_000).as_slice(),
            [Action::Say {
                phrase: Phrase::Reprompt,
                ..
            }]
        ));
    }

    #[test]
    fn a_call_at_its_longest_says_goodbye_over_anything_then_hangs_up() {
        let options = TurnOptions {
            max_duration: Duration::from_secs(60),
            ..TurnOptions::default()
        };
        let mut t = Timeline::new(options);
        t.at(0, Event::Connected);
        t.at(3_000, Event::SpeechFinished(SpeechId(1)));
        t.at(55_000, said("And another thing about the car."));
        t.at(55_500, Event::SpeechAudible(SpeechId(2)));
        assert!(t.ticks(55_600, 59_900).is_empty());
        // One minute: the answer being played is cut for the goodbye; the caller cannot start a turn.
        assert_eq!(
            t.ticks(60_000, 60_000),
            [
                Action::Cancel(SpeechId(2)),
                Action::Say {
                    speech: SpeechId(3),
                    phrase: Phrase::LimitGoodbye
                }
            ]
        );
        assert!(t.at(61_000, said("Wait, one more question.")).is_empty());
        t.at(61_100, Event::SpeechFinished(SpeechId(2)));
        assert_eq!(
            t.at(66_000, Event::SpeechFinished(SpeechId(3))),
            [Action::Hangup(EndReason::DurationLimit)]
        );
        // A goodbye that never finishes playing: the line is dropped 30 s later.
        let mut t = Timeline::new(options);
        t.at(0, Event::Connected);
        t.at(3_000, Event::SpeechFinished(SpeechId(1)));
        assert!(t.ticks(59_900, 60_000).iter().any(|a| matches!(
            a,
            Action::Say {
                phrase: Phrase::LimitGoodbye,
                ..
            }
        )));
        assert!(t.ticks(60_100, 89_900).is_empty());
        assert_eq!(
            t.ticks(90_000, 90_000),
            [Action::Hangup(EndReason::DurationLimit)]
        );
        assert!(t.turns.is_ended());
    }

    #[test]
    fn silence_reprompts_then_hangs_up_politely() {
        let mut t = greeted();
        let first = t.ticks(3_100, 11_000);
        assert_eq!(
            first,
            [Action::Say {
                speech: SpeechId(2),
                phrase: Phrase::Reprompt
            }]
        );
        t.at(12_000, Event::SpeechFinished(SpeechId(2)));
        let second = t.ticks(12_100, 20_000);
        assert!(matches!(
            second.as_slice(),
            [Action::Say {
                phrase: Phrase::Reprompt,
                ..
            }]
        ));
        t.at(21_000, Event::SpeechFinished(SpeechId(3)));
        assert_eq!(
            t.ticks(21_100, 29_000),
            [Action::Say {
                speech: SpeechId(4),
                phrase: Phrase::SilenceGoodbye
            }]
        );
        assert_eq!(
            t.at(31_000, Event::SpeechFinished(SpeechId(4))),
            [Action::Hangup(EndReason::NoResponse)]
        );
        assert!(t.turns.is_ended());
        assert!(t.ticks(31_100, 50_000).is_empty());
    }

    #[test]
    fn an_answer_resets_the_reprompt_count() {
        let mut t = greeted();
        t.ticks(3_100, 11_000);
        t.at(12_000, Event::SpeechFinished(SpeechId(2)));
        t.at(13_000, said("Yes, I'm here."));
        assert_eq!(t.turns.reprompts, 0);
    }

    #[test]
    fn a_slow_answer_gets_a_filler_then_an_apology_at_the_timeout() {
        let mut t = greeted();
        t.at(4_000, said("What does my policy cover?"));
        let filler = t.ticks(4_100, 6_000);
        assert_eq!(
            filler,
            [Action::Say {
                speech: SpeechId(3),
                phrase: Phrase::Filler
            }]
        );
        assert!(t.ticks(6_100, 8_900).is_empty());
        assert_eq!(
            t.ticks(9_000, 9_000),
            [
                Action::Cancel(SpeechId(3)),
                Action::Cancel(SpeechId(2)),
                Action::Say {
                    speech: SpeechId(4),
                    phrase: Phrase::Apology
                }
            ]
        );
    }

    #[test]
    fn a_failed_answer_is_an_apology_and_the_call_goes_on() {
        let mut t = greeted();
        t.at(4_000, said("Hello?"));
        assert_eq!(
            t.at(4_200, Event::ReplyFailed(SpeechId(2))),
            [Action::Say {
                speech: SpeechId(3),
                phrase: Phrase::Apology
            }]
        );
        t.at(6_000, Event::SpeechFinished(SpeechId(3)));
        assert!(matches!(
            t.at(7_000, said("Again?")).as_slice(),
            [Action::Reply { .. }]
        ));
    }

    #[test]
    fn the_agent_hangs_up_only_after_its_goodbye_is_heard() {
        let mut t = greeted();
        t.at(4_000, said("That's all, goodbye."));
        t.at(4_500, Event::SpeechAudible(SpeechId(2)));
        assert!(
            t.at(
                4_600,
                Event::AgentWantsToEnd(EndReason::AgentEnded("goodbye".into()))
            )
            .is_empty()
        );
        // The caller's goodbye over the agent's does not start another turn.
        assert!(t.at(5_000, said("Bye!")).is_empty());
        assert_eq!(
            t.at(6_000, Event::SpeechFinished(SpeechId(2))),
            [Action::Hangup(EndReason::AgentEnded("goodbye".into()))]
        );
    }

    #[test]
    fn the_turn_limit_ends_the_call_politely() {
        let mut t = Timeline::new(TurnOptions {
            max_turns: 2,
            ..TurnOptions::default()
        });
        t.at(0, Event::Connected);
        t.at(1_000, Event::SpeechFinished(SpeechId(1)));
        for (i, at) in [2_000u64, 4_000].into_iter().enumerate() {
            assert!(matches!(
                t.at(at, said("one more thing")).as_slice(),
                [Action::Reply { .. }]
            ));
            t.at(at + 1_000, Event::SpeechFinished(SpeechId(2 + i as u64)));
        }
        assert_eq!(
            t.at(6_000, said("and another")),
            [Action::Say {
                speech: SpeechId(4),
                phrase: Phrase::LimitGoodbye
            }]
        );
        assert_eq!(
            t.at(8_000, Event::SpeechFinished(SpeechId(4))),
            [Action::Hangup(EndReason::TurnLimit)]
        );
    }

    #[test]
    fn noise_transcribed_as_nothing_is_not_a_turn() {
        let mut t = greeted();
        assert!(t.at(4_000, said("")).is_empty());
        assert!(t.at(4_100, said(" ... ")).is_empty());
        assert_eq!(t.turns.turns(), 0);
    }

    #[test]
    fn a_hang_up_ends_everything() {
        let mut t = greeted();
        assert_eq!(
            t.at(4_000, Event::Ended(EndReason::CallerHungUp)),
            [Action::Hangup(EndReason::CallerHungUp)]
        );
        assert!(t.at(4_100, said("hello?")).is_empty());
    }
}
