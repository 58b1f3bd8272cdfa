//! An answer from the company's documents in their own words, for a model too small to answer from
//! them truthfully (the embedded default): the sentences of the passages found that share the most
//! telling words with the caller's question, read out as the document says them. Asked "Does my policy
//! pay for a rental car?" with the example motor policy, SmolLM2-135M answered "Yes, your policy pays for
//! a rental car, but it does not cover a rental car." and "No, your policy does not pay for a rental
//! car"; the document's sentence says what the cover is.

use std::collections::HashMap;

use crate::knowledge::Passage;

/// Sentences quoted at most: a spoken answer is a sentence or two.
const MAX_SENTENCES: usize = 2;
/// Words quoted at most, about ten seconds of speech.
const MAX_WORDS: usize = 60;
/// Weight of a sentence from the passage ranked `i`: the search's order counts, a little.
const RANK_WEIGHT: [f32; 3] = [1.0, 0.8, 0.6];

/// Words too common to tell sentences apart.
const STOP_WORDS: [&str; 58] = [
    "a", "about", "after", "all", "am", "an", "and", "any", "are", "as", "at", "be", "by", "can",
    "could", "did", "do", "does", "for", "from", "get", "had", "has", "have", "how", "i", "if",
    "in", "is", "it", "its", "me", "mine", "my", "of", "on", "or", "our", "so", "that", "the",
    "their", "them", "there", "this", "to", "us", "was", "we", "what", "when", "which", "while",
    "who", "will", "with", "would", "you",
];

/// What a word counts as: its first four letters, so that "rental" and "renting", "injury" and
/// "injuries", "windscreen" and "windshield" count as one.
fn stem(word: &str) -> Option<String> {
    let lower = word.to_lowercase();
    if lower.chars().count() < 3 || STOP_WORDS.contains(&lower.as_str()) {
        return None;
    }
    Some(lower.chars().take(4).collect())
}

fn stems(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter_map(stem)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A passage's sentences as they can be read out (headings dropped, markdown marks taken out), and
/// the words of its headings.
fn spoken_sentences(text: &str) -> (Vec<String>, String) {
    let mut out = Vec::new();
    let mut headings = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            headings.push_str(line.trim_start_matches('#'));
            headings.push(' ');
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let plain: String = line
            .chars()
            .filter(|c| !matches!(c, '*' | '`' | '_'))
            .collect();
        let mut start = 0;
        let mut chars = plain.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if matches!(c, '.' | '!' | '?')
                && chars.peek().is_none_or(|(_, next)| next.is_whitespace())
            {
                out.push(plain[start..=i].trim().to_owned());
                start = i + c.len_utf8();
            }
        }
        out.push(plain[start..].trim().to_owned());
    }
    out.retain(|s| s.chars().any(char::is_alphabetic));
    (out, headings)
}

/// A quoted answer: what to say, and the passage it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    /// The words to say.
    pub text: String,
    /// The passage quoted.
    pub passage: Passage,
}

/// The sentences of `passages` (best first, as the search ranked them) that answer `question` best:
/// each question word found in a sentence (or in its passage's heading, which names what the sentences
/// speak of: "Excess (deductible)") counts the rarer it is among the passages' sentences, times the
/// weight of the passage's rank. The best sentence is said, with the next best of the same passage
/// when it scores at least half as well; `None` when no sentence shares a word with the question.
pub fn quote(question: &str, passages: &[Passage]) -> Option<Quote> {
    let asked = stems(question);
    let candidates: Vec<(usize, usize, String, Vec<String>)> = passages
        .iter()
        .take(RANK_WEIGHT.len())
        .enumerate()
        .flat_map(|(rank, passage)| {
            let (sentences, headings) = spoken_sentences(&passage.text);
            sentences
                .into_iter()
                .enumerate()
                .map(move |(at, sentence)| {
                    let words = stems(&format!("{headings} {sentence}"));
                    (rank, at, sentence, words)
                })
        })
        .collect();
    let mut sentences_with: HashMap<&str, usize> = HashMap::new();
    for (_, _, _, words) in &candidates {
        for word in words {
            *sentences_with.entry(word.as_str()).or_default() += 1;
        }
    }
    let score = |rank: usize, words: &[String]| -> f32 {
        let found: f32 = asked
            .iter()
            .filter(|w| words.contains(w))
            .map(|w| 1.0 / sentences_with.get(w.as_str()).copied().unwrap_or(1) as f32)
            .sum();
        found * RANK_WEIGHT[rank]
    };
    let mut scored: Vec<(f32, usize, usize, &str)> = candidates
        .iter()
        .map(|(rank, at, sentence, words)| (score(*rank, words), *rank, *at, sentence.as_str()))
        .filter(|(s, ..)| *s > 0.0)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let &(best, rank, _, _) = scored.first()?;
    let mut chosen: Vec<(usize, &str)> = scored
        .iter()
        .filter(|(s, r, ..)| *r == rank && *s * 2.0 >= best)
        .take(MAX_SENTENCES)
        .map(|&(_, _, at, sentence)| (at, sentence))
        .collect();
    // Read in the document's order, within the length of a spoken answer.
    chosen.sort_by_key(|(at, _)| *at);
    let mut words = 0;
    let mut said = Vec::new();
    for (_, sentence) in chosen {
        let count = sentence.split_whitespace().count();
        if !said.is_empty() && words + count > MAX_WORDS {
            break;
        }
        words += count;
        said.push(sentence);
    }
    let passage = passages[rank].clone();
    Some(Quote {
        text: format!("{} says: {}", title(&passage.document), said.join(" ")),
        passage,
    })
}

/// How a document is named aloud: "motor-policy.md" is "Our motor policy document".
fn title(document: &str) -> String {
    let stem = document.rsplit_once('.').map_or(document, |(name, _)| name);
    let words: Vec<&str> = stem
        .split(|c: char| c == '-' || c == '_' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        "Our documentation".to_owned()
    } else {
        format!("Our {} document", words.join(" ").to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(index: usize, text: &str) -> Passage {
        Passage {
            document: "motor-policy.md".into(),
            index,
            text: text.into(),
        }
    }

    #[test]
    fn the_sentence_sharing_the_questions_rarest_words_is_read_out() {
        let passages = [
            passage(
                1,
                "## Rental car while yours is repaired\n If your car cannot be driven after an accident \
                 covered by the policy, we pay for a rental car of a similar size for up to 21 days while \
                 it is repaired, up to 45 dollars a day. On the Basic plan a rental car is paid only when \
                 the other driver was at fault. Call us before you rent so that we can book it.",
            ),
            passage(
                3,
                "## Excess (deductible)\n Each claim carries an excess of 250 dollars on the Standard \
                 plan. There is no excess for glass repairs.",
            ),
        ];
        let quote = quote(
            "Does my policy pay for a rental car while mine is repaired?",
            &passages,
        )
        .unwrap();
        assert_eq!(quote.passage.index, 1);
        assert!(
            quote.text.starts_with(
                "Our motor policy document says: If your car cannot be driven after an accident"
            ),
            "{}",
            quote.text
        );
        assert!(!quote.text.contains('#'), "{}", quote.text);
        let excess = super::quote("How much is the deductible?", &passages).unwrap();
        assert_eq!(excess.passage.index, 3, "{excess:?}");
        assert!(excess.text.contains("250 dollars"), "{}", excess.text);
        // Nothing in common: nothing to quote.
        assert_eq!(super::quote("Can you hear me?", &passages), None);
    }

    #[test]
    fn a_quote_is_a_sentence_or_two_within_the_length_of_a_spoken_answer() {
        let long = "word ".repeat(50);
        let passages = [passage(
            0,
            &format!("Glass is covered. {long}glass too. Windscreens are repaired for free."),
        )];
        let quote = quote("Is my windshield glass covered?", &passages).unwrap();
        assert!(
            quote.text.split_whitespace().count() <= MAX_WORDS + 6,
            "{}",
            quote.text
        );
        assert!(quote.text.contains("Glass is covered."), "{}", quote.text);
    }
}
