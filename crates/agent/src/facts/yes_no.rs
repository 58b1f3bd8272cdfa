//! Yes/no facts. As the answer to their question: "No.", "Yes, my passenger.", "No, I'm fine." In any
//! turn, from a sentence about the field's topic ("nobody was hurt" → no, "my passenger hurt her neck"
//! → yes, "the cyclist broke his wrist" → yes), the negation read in the same clause.

use super::tokens::{Stop, Token, tokens};

/// Words that say no in a clause.
const NEGATIONS: &[&str] = &[
    "no",
    "not",
    "nobody",
    "noone",
    "none",
    "nothing",
    "neither",
    "never",
    "without",
    "unhurt",
    "uninjured",
    "nope",
];

/// Words that say the speaker does not know: no answer either way.
const UNSURE: &[&[&str]] = &[
    &["not", "sure"],
    &["don't", "know"],
    &["no", "idea"],
    &["not", "certain"],
    &["can't", "say"],
];

/// Parts of the body: "broke his wrist" is an injury, "broke the window" is not.
const BODY: &[&str] = &[
    "arm",
    "arms",
    "leg",
    "legs",
    "wrist",
    "wrists",
    "neck",
    "back",
    "head",
    "ankle",
    "ankles",
    "knee",
    "knees",
    "shoulder",
    "shoulders",
    "rib",
    "ribs",
    "hand",
    "hands",
    "foot",
    "feet",
    "nose",
    "finger",
    "fingers",
    "hip",
    "collarbone",
    "jaw",
    "elbow",
    "spine",
    "face",
    "chest",
];

fn negated(clause: &[Token]) -> bool {
    clause.iter().any(|t| {
        NEGATIONS.contains(&t.lower.as_str())
            || (t.lower.ends_with("n't") && t.lower != "don't" && t.lower != "can't")
    }) || (clause.len() >= 2
        && clause
            .windows(2)
            .any(|w| w[0].lower == "no" && w[1].lower == "one"))
}

fn unsure(clause: &[Token]) -> bool {
    clause.windows(2).any(|w| {
        UNSURE
            .iter()
            .any(|u| u.len() == 2 && w[0].lower == u[0] && w[1].lower == u[1])
    })
}

/// The clauses of `tokens`: split at commas, sentence ends and "but".
fn clauses(tokens: &[Token]) -> Vec<&[Token]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, token) in tokens.iter().enumerate() {
        if token.lower == "but" && i > start {
            out.push(&tokens[start..i]);
            start = i;
        }
        if token.stop != Stop::None {
            out.push(&tokens[start..=i]);
            start = i + 1;
        }
    }
    if start < tokens.len() {
        out.push(&tokens[start..]);
    }
    out
}

/// A plain yes or no at the start of an answer to a yes/no question ("No, nobody was hurt", "Yes, my
/// passenger"), or a clear negation ("nobody was injured", "I'm fine"). `None` when it says neither.
pub fn yes_or_no(text: &str) -> Option<bool> {
    let tokens = tokens(text);
    if unsure(&tokens) {
        return None;
    }
    for token in &tokens {
        match token.lower.as_str() {
            "no" | "nope" | "nobody" | "none" | "noone" | "nothing" | "not" | "fine"
            | "neither" | "negative" => return Some(false),
            "yes" | "yeah" | "yep" | "yup" | "correct" | "affirmative" => return Some(true),
            w if w.ends_with("n't") => return Some(false),
            _ => {}
        }
    }
    None
}

/// The fact a sentence about `topic` states, in any turn: a clause naming the topic says yes, or no
/// when negated. `topic` words are matched at the start of a word ("injur" covers "injured",
/// "injuries"); "broke", "burned", "scraped" and the like count only before a part of the body.
pub(crate) fn read_topic(text: &str, topic: &[String]) -> Option<bool> {
    if topic.is_empty() {
        return None;
    }
    let tokens = tokens(text);
    let mut answer = None;
    for clause in clauses(&tokens) {
        let about = clause.iter().enumerate().any(|(i, t)| {
            topic.iter().any(|w| t.lower.starts_with(w.as_str()))
                || (matches!(
                    t.lower.as_str(),
                    "broke"
                        | "broken"
                        | "fractured"
                        | "sprained"
                        | "burned"
                        | "burnt"
                        | "cut"
                        | "twisted"
                        | "scraped"
                        | "bruised"
                        | "banged"
                ) && clause[i + 1..]
                    .iter()
                    .take(3)
                    .any(|n| BODY.contains(&n.lower.as_str())))
        });
        if !about || unsure(clause) {
            continue;
        }
        answer = Some(!negated(clause));
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn injuries() -> Vec<String> {
        [
            "hurt",
            "injur",
            "wounded",
            "bleed",
            "hospital",
            "ambulance",
            "whiplash",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn yes_and_no_as_callers_say_them() {
        for (text, expected) in [
            ("No, nobody was hurt.", Some(false)),
            ("Yes, my passenger hurt her neck.", Some(true)),
            ("Thankfully nobody was injured.", Some(false)),
            ("No injuries.", Some(false)),
            ("No, I'm fine.", Some(false)),
            ("It wasn't serious", Some(false)),
            ("My passenger broke his wrist", None),
            ("I'm not sure.", None),
        ] {
            assert_eq!(yes_or_no(text), expected, "{text}");
        }
    }

    #[test]
    fn a_sentence_about_the_topic_states_the_fact_in_any_turn() {
        for (text, expected) in [
            ("Nobody was hurt.", Some(false)),
            ("No one was injured.", Some(false)),
            ("It was on Main Street and no one was hurt.", Some(false)),
            ("My passenger hurt her neck.", Some(true)),
            ("Yes, the cyclist broke his wrist.", Some(true)),
            ("I hurt my wrist when the airbag went off.", Some(true)),
            ("The stone broke the windshield.", None),
            ("I'm not sure if anyone was hurt.", None),
            (
                "The other driver wasn't hurt, but my son went to the hospital.",
                Some(true),
            ),
            ("A tree fell on my car this morning.", None),
        ] {
            assert_eq!(read_topic(text, &injuries()), expected, "{text}");
        }
    }
}
