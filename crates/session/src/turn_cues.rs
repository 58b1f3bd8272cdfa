//! Transcript cues for the end of a turn. Silence alone is a slow judge: the detector waits out
//! VAD_MIN_SILENCE_MS after every phrase because a pause between words looks the same as the end of a
//! turn. What the caller said tells them apart: "I'd like to book a table." is over, "I'd like to book
//! a table and" is not. When the transcript of everything before a pause reads as a finished
//! sentence, the turn may end after the shorter VAD_CUE_SILENCE_MS.
//!
//! The other side: a transcript that clearly goes on (a trailing comma, "and", "my number is", a group of
//! digits) holds the turn open for VAD_HOLD_SILENCE_MS, so a caller who pauses mid-sentence is not
//! answered after half of it. Anything else ambiguous (no closing punctuation at all) falls back to the
//! silence rule.

/// Last words after which a sentence goes on. Whisper puts a full stop after almost anything it hears,
/// including "My number is." said before the digits, so the closing punctuation alone is not enough.
const GOES_ON_AFTER: &[&str] = &[
    // conjunctions
    "and",
    "but",
    "or",
    "so",
    "because",
    "cause",
    "then",
    "if",
    "that",
    "which",
    "who",
    "when",
    "while",
    "although",
    "though",
    "unless",
    "until",
    "whether",
    // articles, possessives, pronouns that start a clause
    "a",
    "an",
    "the",
    "my",
    "your",
    "his",
    "her",
    "our",
    "their",
    "its",
    "this",
    "these",
    "those",
    "i",
    "i'm",
    "we",
    "you",
    "it's",
    "there's",
    "it",
    // prepositions
    "to",
    "of",
    "for",
    "with",
    "in",
    "on",
    "at",
    "from",
    "by",
    "about",
    "into",
    "onto",
    "after",
    "before",
    "like",
    "as",
    // verbs that wait for their object
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "am",
    "have",
    "has",
    "had",
    "do",
    "does",
    "did",
    "want",
    "need",
    "would",
    "could",
    "should",
    "will",
    "can",
    "think",
    "mean",
    // fillers
    "um",
    "uh",
    "er",
    "erm",
    "hmm",
    "mm",
    "ah",
    "well",
    "actually",
    "basically",
];

/// The kinds of street an address names before its town: "on Main Street, Denver" reaches the recogniser
/// as "on Main Street." when the caller pauses at the comma, and reads as finished. After one of these the
/// turn waits the full silence (VAD_MIN_SILENCE_MS), which a caller's pause before the town fits in: in
/// 12 spoken calls (2026-12-04), three of the six lines cut in two were an address cut before its town.
const PLACE_GOES_ON_AFTER: &[&str] = &[
    "street",
    "st",
    "road",
    "rd",
    "avenue",
    "ave",
    "drive",
    "lane",
    "boulevard",
    "way",
    "court",
    "highway",
    "parkway",
];

/// Words a spaced transcript has, at least, to end a turn early. The recogniser closes whatever it
/// heard with a full stop, and a short opening ("Hi.", "Sure.", "Good morning.") is as often followed,
/// after a breath, by the rest: in 12 spoken calls (2026-12-04) about half the lines answered after
/// their first part had been cut after such an opening ("No.", "Hi.", "Sure.").
const MIN_CUE_WORDS: usize = 3;

/// Whether `transcript` reads as a finished turn: it closes with a full stop, question or exclamation
/// mark (or their CJK forms), does not trail off, its last word is not one a sentence goes on after (nor
/// a street that its town may follow), and (in a language written with spaces) it has
/// [`MIN_CUE_WORDS`] words or more, or is a goodbye.
pub fn sounds_finished(transcript: &str) -> bool {
    let text = transcript.trim();
    let goodbye = text
        .split_whitespace()
        .last()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .is_some_and(|w| matches!(w.as_str(), "bye" | "goodbye"));
    if (text.is_ascii() || text.contains(' '))
        && text.split_whitespace().count() < MIN_CUE_WORDS
        && !goodbye
    {
        return false;
    }
    let Some(last) = text.chars().last() else {
        return false;
    };
    if !matches!(last, '.' | '!' | '?' | '。' | '！' | '？') || text.ends_with("..") {
        return false;
    }
    let Some(word) = text.split_whitespace().last() else {
        return false;
    };
    let word = word
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
        .to_lowercase();
    if word.is_empty() || word.ends_with(|c: char| c.is_ascii_digit()) {
        return false;
    }
    !GOES_ON_AFTER.contains(&word.as_str()) && !PLACE_GOES_ON_AFTER.contains(&word.as_str())
}

/// Whether `transcript` clearly goes on: it trails off with a comma, a dash or an ellipsis, ends on a
/// word a sentence goes on after ("and", "the", "is", "um"), or on digits of a number that may go on.
/// Text that is neither this nor [`sounds_finished`] (no punctuation at all) is left to the silence.
pub fn sounds_unfinished(transcript: &str) -> bool {
    let text = transcript.trim();
    if text.is_empty() {
        return false;
    }
    if text.ends_with([',', '-', '—', ';', ':', '…']) || text.ends_with("..") {
        return true;
    }
    let Some(word) = text.split_whitespace().last() else {
        return false;
    };
    let word = word
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
        .to_lowercase();
    !word.is_empty()
        && (word.ends_with(|c: char| c.is_ascii_digit()) || GOES_ON_AFTER.contains(&word.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_sentences_are_cues() {
        for text in [
            " Goodbye! ",
            "Thanks, bye.",
            "Can you help me?",
            "I'd like to book a table for two.",
            "My name is John Smith.",
            "Thank you, bye.",
            "It was on Main Street in Denver.",
            "はい。",
        ] {
            assert!(sounds_finished(text), "{text:?}");
        }
    }

    #[test]
    fn sentences_that_clearly_go_on_hold_the_turn_open() {
        for text in [
            "I was driving home and",
            "I was driving home, and.",
            "My number is.",
            "It happened on Main Street,",
            "Um.",
            "Well...",
            "4 1 5, 5 5 5.",
            "The policy is A B 4 4 7",
        ] {
            assert!(sounds_unfinished(text), "{text:?}");
        }
        for text in [
            "",
            "Hello",
            "Hello.",
            "My name is John Smith.",
            "Thank you, bye.",
        ] {
            assert!(!sounds_unfinished(text), "{text:?}");
        }
    }

    #[test]
    fn sentences_that_go_on_are_not() {
        for text in [
            "",
            "Hello",
            "I was driving home and",
            "I was driving home and.",
            "My number is.",
            "It happened on the.",
            "Um.",
            "So, uh.",
            "Well...",
            "Let me think…",
            "I want to",
            "My number is 415.",
            "4 1 5 5.",
            "It's,",
            "[BLANK_AUDIO]",
            // Short openings wait for the full silence: more often follows.
            "Hi.",
            "Hello.",
            "Good morning.",
            "Sure.",
            // An address may go on to its town after a breath.
            "It was in the parking garage on Main Street.",
            "At 44 Lake Drive.",
        ] {
            assert!(!sounds_finished(text), "{text:?}");
        }
    }
}
