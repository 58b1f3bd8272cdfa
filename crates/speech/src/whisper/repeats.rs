//! Whisper's decoder, greedy and without temperature fallback, sometimes falls into a loop on audio that
//! is not clear speech (line noise, a cough, speech played backwards), writing one phrase over and over
//! until its token budget runs out ("and I'll be right now, and I'll be right now, and …"). The loop's
//! length is bounded where the decoding is set up; here its text is cut back to one copy, so the agent
//! reads what was heard once rather than a wall of repeats.

/// Longest phrase, in words, looked for as a repeat: whisper's loops seen on telephone audio were one to
/// nine words long.
const LONGEST_PHRASE: usize = 12;

/// Copies in a row of a phrase of two or more words that make it a loop. People do say a phrase twice ("I
/// said no, I said no"), not three times.
const PHRASE_COPIES: usize = 3;

/// Copies in a row of one word that make it a loop: "no, no, no, no" is still speech, a word five times or
/// more is the decoder.
const WORD_COPIES: usize = 5;

/// Words that say a digit. Numbers are what a caller repeats for real (an account ending 0000, a phone
/// number with 5555 in it, "five five five five"), and the turn's most important words: a run that has
/// one of these, or a numeral, is never cut.
const DIGIT_WORDS: [&str; 12] = [
    "zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "double",
];

/// `text` with every run of repeats (a phrase [`PHRASE_COPIES`] times in a row, or a single word
/// [`WORD_COPIES`] times) cut back to its first copy, unless the phrase holds a number. Words are
/// compared as written, punctuation included; anything that is not such a run is kept as it is.
pub(crate) fn collapse_repeats(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut kept: Vec<&str> = Vec::with_capacity(words.len());
    let mut at = 0;
    while at < words.len() {
        match loop_at(&words, at) {
            Some((phrase, copies)) => {
                kept.extend_from_slice(&words[at..at + phrase]);
                at += phrase * copies;
            }
            None => {
                kept.push(words[at]);
                at += 1;
            }
        }
    }
    if kept.len() == words.len() {
        return text.to_owned();
    }
    kept.join(" ")
}

/// The shortest phrase starting at `at` that repeats often enough in a row to be a loop, as (words in
/// the phrase, copies in a row).
fn loop_at(words: &[&str], at: usize) -> Option<(usize, usize)> {
    let rest = &words[at..];
    (1..=LONGEST_PHRASE.min(rest.len() / 2)).find_map(|phrase| {
        let first = &rest[..phrase];
        let copies = rest
            .chunks_exact(phrase)
            .take_while(|chunk| chunk == &first)
            .count();
        let needed = if phrase == 1 {
            WORD_COPIES
        } else {
            PHRASE_COPIES
        };
        (copies >= needed && !first.iter().any(|word| says_a_digit(word)))
            .then_some((phrase, copies))
    })
}

fn says_a_digit(word: &str) -> bool {
    if word.chars().any(|c| c.is_ascii_digit()) {
        return true;
    }
    let bare = word
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase();
    DIGIT_WORDS.contains(&bare.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_seen_from_whisper_are_cut_to_one_copy() {
        // Decoded from prompts of Debian's Asterisk sounds played backwards, without fallback.
        assert_eq!(
            collapse_repeats(
                "I'll be right now, and I'll be right now, and I'll be right now, and I'll be right now, and I'll be righ"
            ),
            "I'll be right now, and I'll be righ"
        );
        assert_eq!(collapse_repeats("[ [ [ [ [ [ [ [ ["), "[");
        assert_eq!(
            collapse_repeats(
                "ray descent, ray descent, ray descent, ray descent, ray descent, ray descent and rayaft."
            ),
            "ray descent, ray descent and rayaft."
        );
        assert_eq!(
            collapse_repeats(
                "I hadn't had me flat of this time, but there were all flusus, and there were all flusus, and there were all flusus, and the"
            ),
            "I hadn't had me flat of this time, but there were all flusus, and the"
        );
    }

    #[test]
    fn what_people_repeat_is_kept() {
        for said in [
            "no, no, no, no, that is not my number",
            "my account is 0 0 0 0 0 0 7",
            "five five five five, then one hundred",
            "5 0 5 0 5 0 5 0",
            "I said no, I said no",
            "very very very slowly",
            "one two one two three",
            "4 1 5 5 5 5 0 1 0 0",
            "",
            "Goodbye!",
        ] {
            assert_eq!(collapse_repeats(said), said);
        }
    }
}
