//! What happened, in the caller's words: the answer to "what happened?", or a sentence in any turn that
//! tells an event ("a tree fell on my car this morning", "my bike was stolen"). The request around it
//! ("I need to report…", "and I want to file a claim") and greetings are left out.

use super::tokens::{Stop, Token, join, sentences, tokens};

/// Verbs that tell an event, lower case.
const EVENTS: &[&str] = &[
    "fell",
    "hit",
    "crashed",
    "collided",
    "rear-ended",
    "rear",
    "backed",
    "reversed",
    "swerved",
    "skidded",
    "slid",
    "rolled",
    "flipped",
    "scraped",
    "scratched",
    "dented",
    "cracked",
    "shattered",
    "smashed",
    "broke",
    "burst",
    "leaked",
    "flooded",
    "burned",
    "burnt",
    "caught",
    "overheated",
    "exploded",
    "stolen",
    "stole",
    "vandalized",
    "vandalised",
    "damaged",
    "destroyed",
    "blew",
    "tore",
    "ripped",
    "struck",
    "knocked",
    "collapsed",
    "froze",
    "ran",
    "drove",
    "bumped",
    "sideswiped",
    "totaled",
    "totalled",
    "cut",
    "went",
    "came",
    "overflowed",
    "spread",
    "broken",
    "clipped",
    "keyed",
    "crushed",
    "brought",
    "landed",
    "dropped",
    "jumped",
    "pulled",
    "turned",
    "slammed",
    "shot",
];

/// Words that start a request or an answer to another question, not an event.
const REQUESTS: &[&str] = &[
    "report", "file", "claim", "make", "open", "need", "want", "like", "calling", "call",
];

/// Greetings and fillers before a story.
const LEAD_INS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "well",
    "so",
    "um",
    "uh",
    "er",
    "erm",
    "oh",
    "ah",
    "okay",
    "ok",
    "yes",
    "yeah",
    "sure",
    "right",
    "and",
    "good",
    "morning",
    "afternoon",
    "evening",
];

fn is_event(token: &Token) -> bool {
    EVENTS.contains(&token.lower.as_str())
}

/// Clauses of a sentence, split at commas.
fn clauses(sentence: &[Token]) -> Vec<&[Token]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, t) in sentence.iter().enumerate() {
        if t.stop != Stop::None {
            out.push(&sentence[start..=i]);
            start = i + 1;
        }
    }
    if start < sentence.len() {
        out.push(&sentence[start..]);
    }
    out
}

/// The event part of one sentence: from the first clause that tells an event to the end, without a
/// trailing request ("… and I want to file a claim").
fn event_part(sentence: &[Token]) -> Option<&[Token]> {
    let clauses = clauses(sentence);
    let first = clauses.iter().position(|c| c.iter().any(is_event))?;
    // Clauses after the event that only make the request ("…, I need to report it") end it.
    let last = clauses[first..]
        .iter()
        .position(|c| {
            !c.iter().any(is_event)
                && c.iter()
                    .take(4)
                    .any(|t| REQUESTS.contains(&t.lower.as_str()))
        })
        .map_or(clauses.len(), |n| first + n);
    let start: usize = clauses[..first].iter().map(|c| c.len()).sum();
    let end: usize = clauses[..last].iter().map(|c| c.len()).sum();
    let mut words = &sentence[start..end];
    // "… and I need to file a claim": cut at "and I" before a request word.
    if let Some(cut) = words.windows(3).position(|w| {
        w[0].lower == "and"
            && ["i", "i'd", "i'm", "we"].contains(&w[1].lower.as_str())
            && REQUESTS
                .iter()
                .any(|r| w[2].lower.starts_with(r) || w[2].lower == "would")
    }) {
        words = &words[..cut];
    }
    // A request sentence whose event is only its object ("I want to report that my car was hit") keeps
    // the event; one that only names the claim ("I need to report a car accident") has none.
    let lead = words
        .iter()
        .position(|t| !LEAD_INS.contains(&t.lower.as_str()))
        .unwrap_or(words.len());
    let words = &words[lead..];
    (words.len() >= 2).then_some(words)
}

/// The event told in `text` (every sentence that tells one, joined). `asked`: the agent asked what
/// happened, so the whole answer is the story.
pub(crate) fn read(text: &str, asked: bool) -> Option<String> {
    let tokens = tokens(text);
    let mut parts: Vec<String> = Vec::new();
    for sentence in sentences(&tokens) {
        if let Some(words) = event_part(sentence) {
            parts.push(join(words));
        }
    }
    if parts.is_empty() && asked {
        let lead = tokens
            .iter()
            .position(|t| !LEAD_INS.contains(&t.lower.as_str()))
            .unwrap_or(tokens.len());
        let words = &tokens[lead..];
        if words.len() >= 2 {
            parts.push(join(words));
        }
    }
    (!parts.is_empty()).then(|| parts.join(". "))
}

/// Whether `value` can be a description: two words or more.
pub(crate) fn valid(value: &str) -> bool {
    tokens(value).len() >= 2 && !value.contains('@')
}

/// Words of a story; a short one is worth a question for more.
pub(crate) fn words(value: &str) -> usize {
    tokens(value).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_in_any_turn() {
        for (text, expected) in [
            (
                "Hi, this is Tom Baker, policy AU-300451, a tree fell on my car this morning.",
                Some("a tree fell on my car this morning"),
            ),
            ("My bike was stolen.", Some("My bike was stolen")),
            (
                "Hello, my kitchen flooded and I want to file a claim.",
                Some("my kitchen flooded"),
            ),
            ("Hi, I need to report a car accident.", None),
            ("I want to report hail damage to my car.", None),
            ("My name is Ana Lopez.", None),
            ("It happened yesterday.", None),
            (
                "I hit a cyclist with my car, I need to report it.",
                Some("I hit a cyclist with my car"),
            ),
            (
                "A car ran the stop sign, hit my passenger door and drove away.",
                Some("A car ran the stop sign, hit my passenger door and drove away"),
            ),
        ] {
            assert_eq!(read(text, false).as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn the_answer_to_what_happened_is_the_story() {
        assert_eq!(
            read("Well, a pipe under the sink let go.", true).as_deref(),
            Some("a pipe under the sink let go")
        );
        assert_eq!(read("Hail.", true), None);
        assert!(valid("pipe burst"));
        assert!(!valid("hail"));
    }
}
