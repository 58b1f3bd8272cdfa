//! When a turn's intent label is worth asking the model for, and when a label is acted on.

use crate::config::AgentConfig;
use crate::understanding::cue_text;

/// Whether `caller_said` holds a cue word of `intent`; intents without cues need none.
pub(super) fn confirmed(config: &AgentConfig, intent: &str, caller_said: &str) -> bool {
    let Some(cues) = config.intent_cues.get(intent) else {
        return true;
    };
    let said = cue_text(caller_said);
    cues.iter().any(|cue| said.contains(&cue_text(cue)))
}

/// Whether the model's intent label could change what a turn does (see `Conversation::instruction`): a
/// transfer or hang-up needs one of its cue words in the caller's line (or an intent configured without
/// cues), a document search needs a knowledge base (`documents`) and a line that asks something. When it
/// cannot, the label is not asked for: on the embedded model that request is about half of the wait
/// before the first sentence, and with documents it was asked on every turn, which on two cores made the
/// model and the recogniser queue behind each other from four calls at once (see docs/benchmarks.md,
/// capacity).
pub(super) fn intent_matters(config: &AgentConfig, documents: bool, caller_said: &str) -> bool {
    let configured = |intent: &str| config.intents.iter().any(|i| i == intent);
    if documents
        && (configured("coverage_question") || configured("claim_status"))
        && asks_something(caller_said)
    {
        return true;
    }
    ["speak_to_human", "goodbye"]
        .into_iter()
        .any(|intent| configured(intent) && confirmed(config, intent, caller_said))
}

/// Words that open a question, as the first word of one of the line's sentences.
const QUESTION_OPENERS: [&str; 24] = [
    "am", "are", "can", "could", "did", "do", "does", "has", "have", "how", "is", "may", "shall",
    "should", "was", "were", "what", "when", "where", "which", "who", "why", "will", "would",
];

/// Ways of asking without a question's word order.
const QUESTION_PHRASES: [&str; 7] = [
    "i want to know",
    "i'd like to know",
    "i would like to know",
    "i was wondering",
    "i wonder",
    "tell me",
    "any idea",
];

/// Whether the line asks something: a question mark (the recogniser writes one for a question's
/// intonation), a sentence opened by a question word, or an indirect question ("I was wondering if …").
pub(super) fn asks_something(caller_said: &str) -> bool {
    if caller_said.contains('?') {
        return true;
    }
    let lower = caller_said.to_lowercase();
    if QUESTION_PHRASES.iter().any(|p| lower.contains(p)) {
        return true;
    }
    lower
        .split(['.', '!', ';'])
        .filter_map(|sentence| {
            // "So, does it …", "And how long …": a filler or a conjunction may come first.
            let mut words = sentence
                .split(|c: char| !(c.is_alphanumeric() || c == '\''))
                .filter(|w| !w.is_empty());
            let first = words.next()?;
            if matches!(
                first,
                "so" | "and" | "but" | "also" | "um" | "uh" | "okay" | "ok" | "well"
            ) {
                words.next()
            } else {
                Some(first)
            }
        })
        .any(|first| QUESTION_OPENERS.contains(&first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_intent_label_is_asked_for_only_when_it_could_act() {
        let config = AgentConfig::default();
        assert!(!intent_matters(&config, false, "My name is Ana Lopez."));
        assert!(!intent_matters(
            &config,
            false,
            "Does my policy cover windshields?"
        ));
        assert!(intent_matters(
            &config,
            true,
            "Does my policy cover windshields?"
        ));
        // With documents, a line that asks nothing is not labelled: it cannot be a question to search.
        assert!(!intent_matters(&config, true, "My name is Ana Lopez."));
        assert!(!intent_matters(
            &config,
            true,
            "It happened on Main Street yesterday."
        ));
        assert!(intent_matters(&config, false, "Can I talk to a person?"));
        assert!(intent_matters(&config, false, "No, that's all, bye."));
        // A cue of several words is found however the words are punctuated apart, as
        // `cue_only_intent` finds it.
        assert!(intent_matters(&config, false, "I think that's -- all"));
        assert!(!intent_matters(&config, false, "The hangar flooded."));
        // An action intent configured without cue words acts on the label alone.
        let mut uncued = AgentConfig::default();
        uncued.intent_cues.clear();
        assert!(intent_matters(&uncued, false, "My name is Ana Lopez."));
        // Without the action intents and documents, no label changes anything.
        let plain = AgentConfig {
            intents: vec!["report_claim".into(), "other".into()],
            ..AgentConfig::default()
        };
        assert!(!intent_matters(&plain, true, "Can I talk to a person?"));
    }

    #[test]
    fn questions_are_told_from_statements() {
        for line in [
            "Does my policy pay for a rental car while mine is repaired?",
            "How long does it take before a claim is paid",
            "I had an accident. Is the windscreen covered",
            "So, does the excess apply to glass",
            "I was wondering if I keep my no-claims discount.",
            "Can you tell me what happens next",
            "Has my claim been paid yet?",
        ] {
            assert!(asks_something(line), "{line:?}");
        }
        for line in [
            "Hello, I had a car accident.",
            "My name is Daniel Okafor.",
            "No, nobody was hurt.",
            "It happened yesterday morning, on Main Street.",
            "Another driver reversed into my door while I was parked.",
            "Whatever works for you.",
            "Island Road, near the harbour.",
        ] {
            assert!(!asks_something(line), "{line:?}");
        }
    }
}
