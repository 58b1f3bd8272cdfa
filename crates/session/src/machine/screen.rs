//! Who answered a call the agent placed: a person or an answering machine (AMD). A person picks up and
//! says something short ("Hello?", "Hi, this is Dana") and then waits; a machine plays a greeting that
//! goes on for seconds, often in several breaths, and then beeps. So the agent says nothing at first and
//! listens: a short greeting followed by quiet is a person, a long or many-breathed one or a beep is a
//! machine, and no words at all (or no verdict in time) is unknown, which is greeted as a person would
//! be. With a message to leave, the agent then waits for the machine's beep, or for its greeting to
//! end in a long quiet, before speaking.

use std::time::{Duration, Instant};

use super::{Action, EndReason, Event, Phrase, TurnTaking};

/// Nobody spoke this long after the answer: someone who waits for the caller to speak first.
const FIRST_WORDS_WITHIN: Duration = Duration::from_millis(3_500);
/// Speech running this long without a pause the VAD ends is a recorded greeting.
const MACHINE_SPEECH: Duration = Duration::from_millis(1_800);
/// Quiet this long after a short greeting hands the turn over: a person waiting for an answer. (The VAD
/// reports the end of speech after its own minimum silence, 320 ms, on top of this.)
const HANDED_OVER_AFTER: Duration = Duration::from_millis(800);
/// Utterances begun without such a pause: a person says one or two, a greeting goes on.
const MACHINE_UTTERANCES: u32 = 3;
/// The verdict is given by then, whatever was heard.
const DECIDE_WITHIN: Duration = Duration::from_secs(5);
/// With no beep, a machine's greeting is over after this much quiet.
const GREETING_OVER_AFTER: Duration = Duration::from_millis(2_500);
/// Longest wait for a machine's greeting to end, from the answer; then the agent hangs up without a
/// message.
const MESSAGE_WAIT: Duration = Duration::from_secs(45);

/// Who answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnsweredBy {
    /// A person's short greeting, then quiet.
    Human,
    /// A long greeting, or a beep.
    Machine,
    /// Nothing said, or nothing clear in time: greeted as a person.
    Unknown,
}

impl AnsweredBy {
    /// The word stored with the call, shown in the API and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            AnsweredBy::Human => "human",
            AnsweredBy::Machine => "machine",
            AnsweredBy::Unknown => "unknown",
        }
    }
}

/// What the screen says after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Screened {
    /// Still listening.
    Listening,
    /// The verdict, given once.
    Verdict(AnsweredBy),
    /// The machine is ready to record (it beeped, or its greeting ended): leave the message now.
    LeaveMessage,
    /// The machine's greeting did not end in time.
    GiveUp,
}

/// The first seconds of an answered call the agent placed.
#[derive(Debug)]
pub(super) struct Screen {
    answered: Instant,
    speaking_since: Option<Instant>,
    quiet_since: Option<Instant>,
    utterances: u32,
    verdict: Option<AnsweredBy>,
    beeped: bool,
    /// The verdict was machine and a message is to be left once it is ready.
    awaiting_beep: bool,
}

impl Screen {
    /// Listening from the answer, at `now`.
    pub(super) fn new(now: Instant) -> Self {
        Self {
            answered: now,
            speaking_since: None,
            quiet_since: None,
            utterances: 0,
            verdict: None,
            beeped: false,
            awaiting_beep: false,
        }
    }

    pub(super) fn speech_started(&mut self, now: Instant) {
        self.speaking_since = Some(now);
        self.utterances += 1;
    }

    pub(super) fn speech_ended(&mut self, now: Instant) {
        self.speaking_since = None;
        self.quiet_since = Some(now);
    }

    /// A steady tone ended on the line.
    pub(super) fn beep(&mut self) {
        self.beeped = true;
    }

    /// Whether the far side is talking now.
    pub(super) fn speaking(&self) -> bool {
        self.speaking_since.is_some()
    }

    /// After a machine verdict, the agent waits to leave a message.
    pub(super) fn wait_for_beep(&mut self) {
        self.awaiting_beep = true;
        self.beeped = false;
    }

    /// Where things stand at `now`.
    pub(super) fn check(&mut self, now: Instant) -> Screened {
        if self.awaiting_beep {
            return self.message_due(now);
        }
        if self.verdict.is_some() {
            return Screened::Listening;
        }
        let verdict = self.judge(now);
        self.verdict = verdict;
        verdict.map_or(Screened::Listening, Screened::Verdict)
    }

    fn judge(&self, now: Instant) -> Option<AnsweredBy> {
        let since_answer = now.saturating_duration_since(self.answered);
        if self.beeped {
            return Some(AnsweredBy::Machine);
        }
        if let Some(since) = self.speaking_since {
            if now.saturating_duration_since(since) >= MACHINE_SPEECH
                || self.utterances >= MACHINE_UTTERANCES
            {
                return Some(AnsweredBy::Machine);
            }
        } else if let Some(quiet) = self.quiet_since
            && now.saturating_duration_since(quiet) >= HANDED_OVER_AFTER
        {
            return Some(AnsweredBy::Human);
        }
        if self.utterances == 0 && since_answer >= FIRST_WORDS_WITHIN {
            return Some(AnsweredBy::Unknown);
        }
        (since_answer >= DECIDE_WITHIN).then_some(AnsweredBy::Unknown)
    }

    fn message_due(&self, now: Instant) -> Screened {
        if self.speaking_since.is_none() {
            if self.beeped {
                return Screened::LeaveMessage;
            }
            let quiet = self.quiet_since.unwrap_or(self.answered);
            if now.saturating_duration_since(quiet) >= GREETING_OVER_AFTER {
                return Screened::LeaveMessage;
            }
        }
        if now.saturating_duration_since(self.answered) >= MESSAGE_WAIT {
            return Screened::GiveUp;
        }
        Screened::Listening
    }
}

impl TurnTaking {
    /// Screens the answer of a call the agent placed (AMD): nothing is said on connecting; the first
    /// seconds tell a person (greeted as usual) from an answering machine (hung up on, or with
    /// `leave_message` left the machine message after its beep). Call before [`Event::Connected`].
    pub fn screen_answer(&mut self, leave_message: bool, now: Instant) {
        self.screen = Some(Screen::new(now));
        self.leave_message = leave_message;
    }

    /// An event while the answer is screened: what the far side does feeds the screen (and is not a
    /// turn), until the verdict.
    pub(super) fn on_screening(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let Some(screen) = &mut self.screen else {
            return Vec::new();
        };
        match event {
            Event::CallerSpeechStarted => screen.speech_started(now),
            Event::CallerSpeechEnded => {
                screen.speech_ended(now);
                self.screened_utterances += 1;
            }
            Event::CallerTranscribed { .. } => {
                self.screened_utterances = self.screened_utterances.saturating_sub(1);
            }
            Event::LineTone => screen.beep(),
            _ => {}
        }
        let speaking = u32::from(screen.speaking());
        match screen.check(now) {
            Screened::Listening => Vec::new(),
            Screened::Verdict(AnsweredBy::Machine) if self.leave_message => {
                screen.wait_for_beep();
                vec![Action::AnsweredBy(AnsweredBy::Machine)]
            }
            Screened::Verdict(AnsweredBy::Machine) => {
                self.screen = None;
                self.ending = Some(EndReason::AnsweringMachine);
                let mut actions = vec![Action::AnsweredBy(AnsweredBy::Machine)];
                actions.extend(self.hang_up());
                actions
            }
            Screened::GiveUp => {
                // The machine's greeting never ended: no message.
                self.screen = None;
                self.ending = Some(EndReason::AnsweringMachine);
                self.hang_up()
            }
            Screened::Verdict(by) => {
                // What they are still saying is part of the answer, not a turn.
                self.screen = None;
                self.screened_utterances += speaking;
                let mut actions = vec![Action::AnsweredBy(by)];
                actions.extend(self.say(Phrase::Greeting, false, now));
                actions
            }
            Screened::LeaveMessage => {
                self.screen = None;
                self.screened_utterances += speaking;
                self.ending = Some(EndReason::AnsweringMachine);
                self.say(Phrase::MachineMessage, false, now)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    /// Runs a timeline of (ms, what) where what is "start", "end" or "beep", checking every 50 ms; returns
    /// the first verdict and when it came.
    fn verdict_of(timeline: &[(u64, &str)]) -> (AnsweredBy, u64) {
        let t0 = Instant::now();
        let mut screen = Screen::new(t0);
        let mut events = timeline.iter().peekable();
        for ms in (0..10_000).step_by(50) {
            while let Some((_, what)) = events.next_if(|(when, _)| *when <= ms) {
                match *what {
                    "start" => screen.speech_started(at(t0, ms)),
                    "end" => screen.speech_ended(at(t0, ms)),
                    _ => screen.beep(),
                }
            }
            if let Screened::Verdict(v) = screen.check(at(t0, ms)) {
                return (v, ms);
            }
        }
        panic!("no verdict");
    }

    #[test]
    fn a_short_hello_then_quiet_is_a_person() {
        // "Hello?" (700 ms), the VAD's end 320 ms later, then quiet.
        let (v, ms) = verdict_of(&[(400, "start"), (1_420, "end")]);
        assert_eq!(v, AnsweredBy::Human);
        assert_eq!(ms, 2_250);
    }

    #[test]
    fn a_long_greeting_or_many_breaths_or_a_beep_is_a_machine() {
        let (v, ms) = verdict_of(&[(300, "start")]);
        assert_eq!((v, ms), (AnsweredBy::Machine, 2_100));
        // "Hi, you've reached Sam." "I can't take your call." "Leave a message." with short pauses.
        let (v, ms) = verdict_of(&[
            (300, "start"),
            (1_500, "end"),
            (1_900, "start"),
            (3_100, "end"),
            (3_500, "start"),
        ]);
        assert_eq!((v, ms), (AnsweredBy::Machine, 3_500));
        let (v, _) = verdict_of(&[(300, "beep")]);
        assert_eq!(v, AnsweredBy::Machine);
    }

    #[test]
    fn silence_or_no_clear_answer_is_unknown() {
        assert_eq!(verdict_of(&[]), (AnsweredBy::Unknown, 3_500));
        // Words only after the wait for them.
        assert_eq!(
            verdict_of(&[(4_000, "start"), (4_600, "end")]),
            (AnsweredBy::Unknown, 3_500)
        );
        // Words just in time, still going when the verdict is due and not yet long enough to be a
        // recording.
        assert_eq!(
            verdict_of(&[(3_400, "start")]),
            (AnsweredBy::Unknown, 5_000)
        );
    }

    #[test]
    fn the_message_waits_for_the_beep_or_a_long_quiet() {
        let t0 = Instant::now();
        let mut screen = Screen::new(t0);
        screen.speech_started(at(t0, 300));
        assert_eq!(
            screen.check(at(t0, 2_200)),
            Screened::Verdict(AnsweredBy::Machine)
        );
        screen.wait_for_beep();
        assert_eq!(screen.check(at(t0, 4_000)), Screened::Listening);
        screen.speech_ended(at(t0, 5_000));
        assert_eq!(screen.check(at(t0, 5_100)), Screened::Listening);
        screen.beep();
        assert_eq!(screen.check(at(t0, 5_500)), Screened::LeaveMessage);

        // No beep: a long quiet after the greeting will do.
        let mut screen = Screen::new(t0);
        screen.speech_started(at(t0, 300));
        screen.check(at(t0, 2_200));
        screen.wait_for_beep();
        screen.speech_ended(at(t0, 6_000));
        assert_eq!(screen.check(at(t0, 8_000)), Screened::Listening);
        assert_eq!(screen.check(at(t0, 8_500)), Screened::LeaveMessage);

        // A greeting that never ends.
        let mut screen = Screen::new(t0);
        screen.speech_started(at(t0, 300));
        screen.check(at(t0, 2_200));
        screen.wait_for_beep();
        assert_eq!(screen.check(at(t0, 44_000)), Screened::Listening);
        assert_eq!(screen.check(at(t0, 45_000)), Screened::GiveUp);
    }

    fn screened(leave_message: bool) -> (TurnTaking, Instant) {
        let t0 = Instant::now();
        let mut turns = TurnTaking::new(super::super::TurnOptions::default(), t0);
        turns.screen_answer(leave_message, t0);
        assert!(
            turns.on_event(Event::Connected, t0).is_empty(),
            "no greeting"
        );
        (turns, t0)
    }

    fn ticks(turns: &mut TurnTaking, t0: Instant, from: u64, to: u64) -> Vec<Action> {
        (from..=to)
            .step_by(50)
            .flat_map(|ms| turns.on_event(Event::Tick, at(t0, ms)))
            .collect()
    }

    #[test]
    fn a_person_is_greeted_and_their_hello_is_not_answered() {
        let (mut turns, t0) = screened(true);
        turns.on_event(Event::CallerSpeechStarted, at(t0, 400));
        turns.on_event(Event::CallerSpeechEnded, at(t0, 1_400));
        assert!(ticks(&mut turns, t0, 1_450, 2_150).is_empty());
        let actions = ticks(&mut turns, t0, 2_200, 2_300);
        assert_eq!(
            actions,
            [
                Action::AnsweredBy(AnsweredBy::Human),
                Action::Say {
                    speech: super::super::SpeechId(1),
                    phrase: Phrase::Greeting
                }
            ]
        );
        // "Hello?" transcribed while the greeting plays: not a turn.
        assert!(
            turns
                .on_event(
                    Event::CallerTranscribed {
                        text: "Hello?".into()
                    },
                    at(t0, 2_500)
                )
                .is_empty()
        );
        turns.on_event(
            Event::SpeechFinished(super::super::SpeechId(1)),
            at(t0, 5_000),
        );
        // The person's next words are.
        turns.on_event(Event::CallerSpeechStarted, at(t0, 5_500));
        turns.on_event(Event::CallerSpeechEnded, at(t0, 6_500));
        let reply = turns.on_event(
            Event::CallerTranscribed {
                text: "Yes, speaking.".into(),
            },
            at(t0, 6_700),
        );
        assert!(
            matches!(&reply[..], [Action::Reply { caller_text, .. }] if caller_text == "Yes, speaking."),
            "{reply:?}"
        );
    }

    #[test]
    fn a_machine_gets_the_message_after_its_beep_then_the_call_ends() {
        let (mut turns, t0) = screened(true);
        turns.on_event(Event::CallerSpeechStarted, at(t0, 600));
        assert_eq!(
            ticks(&mut turns, t0, 650, 2_400),
            [Action::AnsweredBy(AnsweredBy::Machine)]
        );
        turns.on_event(Event::CallerSpeechEnded, at(t0, 6_600));
        assert!(ticks(&mut turns, t0, 6_650, 7_000).is_empty());
        // The beep: its own utterance to the VAD, which ends it 320 ms after the tone.
        turns.on_event(Event::CallerSpeechStarted, at(t0, 7_000));
        assert!(turns.on_event(Event::LineTone, at(t0, 7_420)).is_empty());
        assert_eq!(
            turns.on_event(Event::CallerSpeechEnded, at(t0, 7_740)),
            [Action::Say {
                speech: super::super::SpeechId(1),
                phrase: Phrase::MachineMessage
            }]
        );
        // The greeting's transcripts come in: no turn, no interruption.
        for _ in 0..2 {
            assert!(
                turns
                    .on_event(
                        Event::CallerTranscribed {
                            text: "Please leave your message.".into()
                        },
                        at(t0, 8_000)
                    )
                    .is_empty()
            );
        }
        assert_eq!(
            turns.on_event(
                Event::SpeechFinished(super::super::SpeechId(1)),
                at(t0, 12_000)
            ),
            [Action::Hangup(EndReason::AnsweringMachine)]
        );
    }

    #[test]
    fn with_detect_a_machine_is_hung_up_on_at_once() {
        let (mut turns, t0) = screened(false);
        turns.on_event(Event::CallerSpeechStarted, at(t0, 600));
        assert_eq!(
            ticks(&mut turns, t0, 650, 2_400),
            [
                Action::AnsweredBy(AnsweredBy::Machine),
                Action::Hangup(EndReason::AnsweringMachine)
            ]
        );
    }
}
