//! The turn-taking rules, each on a hand-made timeline.

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
            keyed: false,
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
            keyed: false,
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
                keyed: false,
            }
        ]
    );
}

fn reply(speech: u64, text: &str, continues: bool) -> Action {
    Action::Reply {
        speech: SpeechId(speech),
        caller_text: text.into(),
        continues,
        keyed: false,
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
            keyed: false,
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

fn typed(speech: u64, digits: &str) -> Action {
    Action::Reply {
        speech: SpeechId(speech),
        caller_text: digits.into(),
        continues: false,
        keyed: true,
    }
}

#[test]
fn keys_typed_are_one_turn_ended_by_the_hash_key_and_the_first_key_stops_the_agent() {
    let mut t = greeted();
    t.at(3_500, Event::CallerSpeechStarted);
    t.at(5_000, Event::CallerSpeechEnded);
    t.at(5_300, said("Here's my number."));
    t.at(5_800, Event::SpeechAudible(SpeechId(2)));
    // The caller starts typing over the answer: it stops at once; more keys change nothing yet.
    assert_eq!(
        t.at(6_000, Event::CallerKey('4')),
        [Action::Cancel(SpeechId(2))]
    );
    for (at, key) in [(6_300, '1'), (6_600, '5')] {
        assert!(t.at(at, Event::CallerKey(key)).is_empty());
    }
    assert!(
        t.ticks(6_600, 8_000).is_empty(),
        "nothing until the entry ends"
    );
    assert_eq!(t.at(8_100, Event::CallerKey('#')), [typed(3, "415")]);
}

#[test]
fn keys_typed_without_the_hash_key_count_after_a_pause_and_never_join_speech() {
    let mut t = greeted();
    t.at(4_000, Event::CallerKey('7'));
    t.at(4_500, Event::CallerKey('2'));
    assert!(t.ticks(4_500, 7_400).is_empty());
    assert_eq!(t.ticks(7_500, 7_500), [typed(2, "72")]);
    // Speech soon after is a turn of its own, not more of the keys' turn.
    t.at(7_700, Event::CallerSpeechStarted);
    t.at(8_000, Event::CallerSpeechEnded);
    assert_eq!(
        t.at(8_200, said("That's it.")),
        [Action::Cancel(SpeechId(2)), reply(3, "That's it.", false)]
    );
}

#[test]
fn keys_after_the_goodbye_are_ignored() {
    let mut t = greeted();
    t.at(
        3_100,
        Event::AgentWantsToEnd(EndReason::AgentEnded("done".into())),
    );
    assert!(t.at(3_200, Event::CallerKey('1')).is_empty());
    assert!(t.at(3_300, Event::CallerKey('#')).is_empty());
}
