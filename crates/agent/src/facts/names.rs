//! A caller's name: after the words that announce it ("my name is", "this is", "I'm"), in any turn, or
//! as the whole answer to the name question ("Maria Gonzalez."). A name is one to four words that look
//! like one: no verbs, no function words, no digits. A story given in answer to the name question is
//! not a name.

use super::tokens::{Stop, Token, tokens, without_lead_ins};

/// Words that announce a name, lower case.
const CUES: &[&[&str]] = &[
    &["my", "name", "is"],
    &["my", "name's"],
    &["name", "is"],
    &["the", "name", "is"],
    &["this", "is"],
    &["i'm"],
    &["i", "am"],
    &["it's"],
    &["here", "is"],
];

/// Words that are never part of a name, even written with a capital (sentence starts, greetings,
/// words a recogniser capitalises), lower case.
const NOT_NAMES: &[&str] = &[
    "something",
    "nothing",
    "anything",
    "everything",
    "someone",
    "somebody",
    "anyone",
    "anybody",
    "everyone",
    "everybody",
    "nobody",
    "a",
    "an",
    "the",
    "i",
    "i'm",
    "me",
    "my",
    "mine",
    "you",
    "your",
    "he",
    "she",
    "we",
    "they",
    "it",
    "it's",
    "this",
    "that",
    "these",
    "those",
    "there",
    "here",
    "and",
    "or",
    "but",
    "so",
    "because",
    "of",
    "to",
    "for",
    "with",
    "on",
    "in",
    "at",
    "by",
    "from",
    "about",
    "as",
    "is",
    "am",
    "are",
    "was",
    "were",
    "be",
    "been",
    "have",
    "has",
    "had",
    "do",
    "does",
    "did",
    "don't",
    "doesn't",
    "didn't",
    "isn't",
    "can't",
    "won't",
    "not",
    "no",
    "yes",
    "yeah",
    "sure",
    "okay",
    "ok",
    "hi",
    "hello",
    "hey",
    "thanks",
    "thank",
    "sorry",
    "please",
    "just",
    "calling",
    "call",
    "called",
    "phoning",
    "ringing",
    "trying",
    "going",
    "looking",
    "here",
    "fine",
    "good",
    "well",
    "great",
    "afraid",
    "glad",
    "happy",
    "sure",
    "still",
    "also",
    "really",
    "actually",
    "um",
    "uh",
    "er",
    "oh",
    "policy",
    "number",
    "name",
    "claim",
    "insurance",
    "car",
    "house",
    "home",
    "accident",
    "street",
    "avenue",
    "road",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "yesterday",
    "today",
    "tomorrow",
    "morning",
    "afternoon",
    "evening",
    "night",
    "what",
    "who",
    "when",
    "where",
    "why",
    "how",
    "can",
    "could",
    "would",
    "will",
    "should",
    "need",
    "want",
    "like",
    "would",
    "report",
    "file",
    "make",
    "get",
    "speak",
    "talk",
    "someone",
    "somebody",
    "nobody",
    "anyone",
    "everyone",
    "all",
    "everything",
    "nothing",
    "bye",
    "goodbye",
    "agent",
    "person",
    "human",
    "mr",
    "mrs",
    "ms",
    "dr",
    "miss",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "zero",
    "oh",
];

/// Titles that may precede a name and are dropped from it.
const TITLES: &[&str] = &["mr", "mrs", "ms", "miss", "dr", "doctor"];

fn name_word(token: &Token, capitals_required: bool) -> bool {
    let word = token.raw.as_str();
    let letters = word
        .chars()
        .all(|c| c.is_alphabetic() || c == '\'' || c == '-');
    let starts = word.chars().next().is_some_and(char::is_alphabetic);
    letters
        && starts
        && word.chars().count() >= 2
        && !NOT_NAMES.contains(&token.lower.as_str())
        && (!capitals_required || token.capitalised())
}

/// The name words at the start of `tokens` (up to four, ending at a comma or sentence end).
fn name_at(tokens: &[Token], capitals_required: bool) -> Option<String> {
    let mut start = 0;
    while tokens
        .get(start)
        .is_some_and(|t| TITLES.contains(&t.lower.as_str()))
    {
        start += 1;
    }
    let mut words = Vec::new();
    for token in &tokens[start..] {
        if words.len() == 4 || !name_word(token, capitals_required) {
            break;
        }
        words.push(capitalise(&token.raw));
        if token.stop != Stop::None {
            break;
        }
    }
    (!words.is_empty()).then(|| words.join(" "))
}

/// A word with its first letter upper case (a recogniser sometimes writes "ana lopez").
fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The caller's name in `text`. `asked` says the agent just asked for it: then a bare name is an answer,
/// and "it's" announces one.
pub(crate) fn read(text: &str, asked: bool) -> Option<String> {
    let tokens = tokens(text);
    for i in 0..tokens.len() {
        for cue in CUES {
            if (*cue == ["it's"] || *cue == ["here", "is"]) && !asked {
                continue;
            }
            let end = i + cue.len();
            if end > tokens.len()
                || tokens[i..end]
                    .iter()
                    .zip(cue.iter())
                    .any(|(t, c)| t.lower != *c)
                || tokens[end - 1].stop == Stop::Sentence
            {
                continue;
            }
            // "My name is" says a name follows, whatever its case; "I'm" and "this is" are followed by
            // a name only if it is written as one ("I'm calling", "this is about my car").
            let explicit = cue.contains(&"name") || cue.contains(&"name's");
            if let Some(name) = name_at(&tokens[end..], !explicit) {
                // "I'm Ana Lopez and …" is a name; "I'm Fine" is caught by NOT_NAMES.
                return Some(name);
            }
        }
    }
    if !asked {
        return None;
    }
    // The whole answer: lead-ins, then the name, then nothing but the end of the sentence.
    let rest = without_lead_ins(&tokens);
    // Every word written as a name: "Hail damage." is not one.
    let name = name_at(rest, true)?;
    let used = name.split_whitespace().count();
    let tail = &rest[used..];
    let ends_at_stop = rest[..used].last().is_some_and(|t| t.stop != Stop::None);
    let courtesies_follow = tail
        .iter()
        .all(|t| ["please", "thanks", "here", "speaking"].contains(&t.lower.as_str()));
    (ends_at_stop || courtesies_follow).then_some(name)
}

/// Whether `value` looks like a person's name: one to four words, each a word of a name.
pub(crate) fn valid(value: &str) -> bool {
    let tokens = tokens(value);
    (1..=4).contains(&tokens.len())
        && value.chars().count() <= 60
        && tokens.iter().all(|t| name_word(t, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_after_their_cues_in_any_turn() {
        for (text, expected) in [
            ("My name is Ana Lopez.", Some("Ana Lopez")),
            (
                "Hi, this is Tom Baker, policy AU-300451, a tree fell on my car.",
                Some("Tom Baker"),
            ),
            ("I'm David Chen.", Some("David Chen")),
            ("Sure, my name is Emily Davis.", Some("Emily Davis")),
            (
                "my name is ana lopez and I had an accident",
                Some("Ana Lopez"),
            ),
            ("I'm calling because my car was hit.", None),
            ("This is about my car.", None),
            ("I'm fine, thanks.", None),
            ("I am Mr. Kevin O'Brien.", Some("Kevin O'Brien")),
            ("I need to report an accident.", None),
        ] {
            assert_eq!(read(text, false).as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn a_bare_name_answers_the_name_question_and_a_story_does_not() {
        for (text, expected) in [
            ("Maria Gonzalez.", Some("Maria Gonzalez")),
            ("Kevin O'Brien.", Some("Kevin O'Brien")),
            ("It's Priya Shah.", Some("Priya Shah")),
            ("Yes, Lukas Schmidt here.", Some("Lukas Schmidt")),
            ("A car ran the stop sign and hit my door.", None),
            ("Someone rear-ended me at a red light.", None),
            ("Yesterday.", None),
            ("AB-48213.", None),
            // The opening word of a question cut off by the end of a turn.
            ("Does.", None),
            ("Does my policy pay for a rental car?", None),
            // A complaint given where a name was asked, as whisper-base writes it.
            (
                "Something is terribly wrong. Weasels have eaten our phone system.",
                None,
            ),
            ("Nobody.", None),
        ] {
            assert_eq!(read(text, true).as_deref(), expected, "{text}");
        }
        assert_eq!(read("Maria Gonzalez.", false), None);
    }

    #[test]
    fn only_name_shaped_values_are_names() {
        assert!(valid("Ana Lopez"));
        assert!(valid("Kevin O'Brien"));
        assert!(!valid("I was rear-ended at a light"));
        assert!(!valid("example.com"));
        assert!(!valid("AB48213"));
        assert!(!valid(""));
    }
}
