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
    action_cued(config, caller_said)
}

/// Whether the line could be a transfer or a hang-up: an action intent is configured and the line has
/// one of its cue words (or the intent needs none).
pub(super) fn action_cued(config: &AgentConfig, caller_said: &str) -> bool {
    let configured = |intent: &str| config.intents.iter().any(|i| i == intent);
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
    !question_sentences(caller_said).is_empty()
}

/// The line's sentences that ask something (see [`asks_something`]), each with its own punctuation.
fn question_sentences(caller_said: &str) -> Vec<&str> {
    sentences(caller_said)
        .into_iter()
        .filter(|sentence| {
            if sentence.ends_with('?') {
                return true;
            }
            let lower = sentence.to_lowercase();
            QUESTION_PHRASES.iter().any(|p| lower.contains(p))
                || opening_word(&lower).is_some_and(|first| QUESTION_OPENERS.contains(&first))
        })
        .collect()
}

/// `text` cut after each `.`, `!`, `?` or `;` that a space or the end follows (so "jane.doe@example.com"
/// and "4.5" stay whole), without empty pieces.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let ends = matches!(c, '.' | '!' | '?' | ';')
            && chars.peek().is_none_or(|(_, next)| next.is_whitespace());
        if ends {
            out.push(text[start..=i].trim());
            start = i + c.len_utf8();
        }
    }
    out.push(text[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// A sentence's first word, past one filler or conjunction ("So, does it …", "And how long …").
fn opening_word(lower: &str) -> Option<&str> {
    let mut words = lower
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
}

/// Questions about the call itself rather than the documents: the caller offering what the agent asks
/// for, or checking it was taken down ("Do you need my policy number?", "Did you get that?"). With the shipped
/// embedder, "Do you need my policy number?" scores 0.41 against a policy's title passage, above
/// [`UNLABELLED_QUESTION_SCORE`].
const ABOUT_THE_CALL: [&str; 7] = [
    "do you need",
    "do you want",
    "did you get",
    "have you got",
    "can i give",
    "may i give",
    "should i give",
];

/// The questions of a turn that the documents might answer, joined: the sentences that ask something,
/// except those about the call itself. `None` when there are none. A turn that tells the story and asks
/// in the same breath ("I had an accident. Does my policy pay for a rental car?") is searched with its
/// question alone, which the statement would otherwise drown.
pub fn document_question(caller_said: &str) -> Option<String> {
    let questions: Vec<&str> = question_sentences(caller_said)
        .into_iter()
        .filter(|sentence| {
            let lower = sentence.to_lowercase();
            !ABOUT_THE_CALL.iter().any(|p| lower.contains(p))
        })
        .collect();
    (!questions.is_empty()).then(|| questions.join(" "))
}

/// The least similarity a passage needs to answer a question that the model did not label as one for
/// the documents (a question asked beside a statement, most often). Measured with the shipped
/// all-MiniLM-L6-v2 on the example motor policy (`examples/kb`): 25 questions about its cover scored
/// 0.21 to 0.78 (19 at 0.35 or more), and 25 questions about the call ("Can you hear me?", "Is this a
/// real person?", "What happens now?") 0.04 to 0.25, the one above it ("Do you need my policy number?",
/// 0.41) being a question about the call ([`ABOUT_THE_CALL`]). A question the model does label is
/// answered from 0.2 (see `Conversation::search`).
pub const UNLABELLED_QUESTION_SCORE: f32 = 0.35;

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

    #[test]
    fn a_question_beside_a_statement_is_searched_alone_and_questions_about_the_call_not_at_all() {
        assert_eq!(
            document_question("I have a car accident. Does my policy pay for a rental car?")
                .as_deref(),
            Some("Does my policy pay for a rental car?")
        );
        assert_eq!(
            document_question("Hi. So how long does a claim take. And is glass covered?")
                .as_deref(),
            Some("So how long does a claim take. And is glass covered?")
        );
        // An address's dots and a number's decimal point do not end a sentence.
        assert_eq!(
            document_question("It's jane.doe@example.com. Is my excess 2.5 thousand?").as_deref(),
            Some("Is my excess 2.5 thousand?")
        );
        for line in [
            "I had an accident this morning.",
            "Do you need my policy number? It's AB-12345.",
            "Did you get that?",
            "Can I give you my e-mail address?",
            "",
        ] {
            assert_eq!(document_question(line), None, "{line:?}");
        }
    }
}
