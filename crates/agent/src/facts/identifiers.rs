//! Identifiers of letters then digits (policy numbers: "AB-48213") as callers say them and recognisers
//! write them: "A B 4 8 2 1 3", "H O four four seven two one nine", "a B-447-219" (Whisper's "a" for
//! the letter A), "AB for eight two one three" ("for" for 4, "to" for 2, "oh" for 0 in a digit run),
//! "double four", spelled letter names ("bee", "jay"), "h0447219" (a single letter then 0: Whisper's
//! digit for the spoken letter O, so such an identifier is read with two letters), "ho 330,981"
//! (letters written as a word just before the digits). Upper case without separators.

use crate::numbers::digit_word;

/// Letters an identifier starts with, at most.
const MAX_LETTERS: usize = 4;
/// Digits it has, at least and at most.
const DIGITS: std::ops::RangeInclusive<usize> = 4..=12;

/// Short words said before a number that are not the letters of an identifier ("it is 300451").
const NOT_LETTERS: &[&str] = &[
    "a", "an", "at", "and", "am", "are", "as", "be", "by", "do", "did", "go", "had", "has", "he",
    "her", "him", "his", "i", "in", "is", "it", "its", "me", "my", "no", "nr", "num", "of", "oh",
    "ok", "on", "or", "our", "out", "she", "so", "the", "to", "up", "us", "was", "we", "who",
    "yes", "you", "one", "two", "six", "ten", "for", "from", "with", "into", "just", "then",
    "than", "that", "this", "they", "them", "what", "when", "ends", "like", "mine", "your", "yeah",
    "yep", "okay", "sure", "uh", "um",
];

/// Names of letters that are not also common words (no "see", "are", "you", "why").
fn letter_name(word: &str) -> Option<char> {
    Some(match word {
        "bee" => 'B',
        "dee" => 'D',
        "eff" => 'F',
        "gee" => 'G',
        "aitch" | "haitch" => 'H',
        "jay" => 'J',
        "kay" => 'K',
        "el" | "ell" => 'L',
        "em" => 'M',
        "en" => 'N',
        "pee" => 'P',
        "cue" => 'Q',
        "ess" => 'S',
        "tee" => 'T',
        "vee" => 'V',
        "ex" => 'X',
        "zed" | "zee" => 'Z',
        _ => return None,
    })
}

/// Words a recogniser writes for a digit inside a run of digits.
fn digit_sound(word: &str) -> Option<char> {
    match word {
        "for" | "fore" => Some('4'),
        "to" | "too" => Some('2'),
        "won" => Some('1'),
        "ate" => Some('8'),
        _ => digit_word(word),
    }
}

/// One piece of an identifier.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Letters(String),
    Digits(String),
    /// A word that may be a digit only between digits ("for", "to", "oh").
    Sound(char),
    /// "double", "triple".
    Repeat(usize),
    Other,
}

fn pieces(text: &str) -> Vec<Piece> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '-' | '.' | ';' | ':' | '/'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut out = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let word = word.trim_matches(|c: char| !c.is_alphanumeric());
        let lower = word.to_lowercase();
        let next_is_letter = words.get(i + 1).is_some_and(|n| {
            let n = n.trim_matches(|c: char| !c.is_alphanumeric());
            n.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && n.chars().take_while(char::is_ascii_alphabetic).count() <= MAX_LETTERS
        });
        let piece = if word.is_empty() {
            continue;
        } else if word.chars().all(|c| c.is_ascii_digit()) {
            Piece::Digits(word.to_owned())
        } else if word.len() <= MAX_LETTERS && word.chars().all(|c| c.is_ascii_uppercase()) {
            Piece::Letters(word.to_owned())
        } else if let Some(split) = word.find(|c: char| c.is_ascii_digit())
            && split <= MAX_LETTERS
            && word[..split].chars().all(|c| c.is_ascii_alphabetic())
            && word[split..].chars().all(|c| c.is_ascii_digit())
        {
            // "AB48213", "b4472": letters written against their digits.
            if split > 0 {
                out.push(Piece::Letters(word[..split].to_uppercase()));
            }
            Piece::Digits(word[split..].to_owned())
        } else if (2..=3).contains(&word.len())
            && word.chars().all(|c| c.is_ascii_alphabetic())
            && !NOT_LETTERS.contains(&lower.as_str())
            && words.get(i + 1).is_some_and(|n| {
                n.trim_matches(|c: char| !c.is_alphanumeric())
                    .starts_with(|c: char| c.is_ascii_digit())
            })
        {
            // Letters the recogniser took for a word, right before the digits: "ho 330,981".
            Piece::Letters(word.to_uppercase())
        } else if (lower == "a" || lower == "i") && next_is_letter {
            // Whisper writes the spoken letter A as the article: "a B-447-219".
            Piece::Letters(lower.to_uppercase())
        } else if word.len() == 1
            && word.chars().all(|c| c.is_ascii_alphabetic())
            && lower != "a"
            && lower != "i"
        {
            Piece::Letters(lower.to_uppercase())
        } else if lower == "double" {
            Piece::Repeat(2)
        } else if lower == "triple" {
            Piece::Repeat(3)
        } else if let Some(letter) = letter_name(&lower) {
            Piece::Letters(letter.to_string())
        } else if let Some(d) = digit_sound(&lower) {
            Piece::Sound(d)
        } else {
            Piece::Other
        };
        out.push(piece);
    }
    out
}

/// Every identifier in `text`, in order. `strict` (nothing said it is one): only the written form with
/// two or more letters ("AB-48213"), or any form after the word "policy".
pub(crate) fn read_all(text: &str, strict: bool) -> Vec<String> {
    let lower = text.to_lowercase();
    let cued = !strict || lower.contains("policy");
    let pieces = pieces(text);
    let mut found = Vec::new();
    let mut i = 0;
    while i < pieces.len() {
        let Piece::Letters(_) = &pieces[i] else {
            i += 1;
            continue;
        };
        let mut letters = String::new();
        let mut j = i;
        while let Some(Piece::Letters(l)) = pieces.get(j) {
            letters.push_str(l);
            j += 1;
        }
        let mut digits = String::new();
        let mut repeat = 1;
        while let Some(piece) = pieces.get(j) {
            match piece {
                Piece::Digits(d) => digits.push_str(&d.repeat(repeat)),
                Piece::Sound(d) => {
                    // A digit sound counts inside a run, or right after the letters when digits follow.
                    let next_digit = matches!(
                        pieces.get(j + 1),
                        Some(Piece::Digits(_) | Piece::Sound(_) | Piece::Repeat(_))
                    );
                    if digits.is_empty() && !next_digit {
                        break;
                    }
                    for _ in 0..repeat {
                        digits.push(*d);
                    }
                }
                Piece::Repeat(n) => {
                    repeat = *n;
                    j += 1;
                    continue;
                }
                _ => break,
            }
            repeat = 1;
            j += 1;
        }
        let mut letters = if letters.len() > MAX_LETTERS {
            letters[letters.len() - MAX_LETTERS..].to_owned()
        } else {
            letters
        };
        // A letter O read as the digit: "H O 4 4 7" is written "h0447219".
        if letters.len() == 1 && digits.starts_with('0') && DIGITS.contains(&(digits.len() - 1)) {
            letters.push('O');
            digits.remove(0);
        }
        if DIGITS.contains(&digits.len()) && (cued || letters.len() >= 2) {
            found.push(format!("{letters}{digits}"));
        }
        i = j.max(i + 1);
    }
    found
}

/// The letters an identifier starts with, when `text` ends on them and holds no digit: a caller who
/// reads "C A" off their card and pauses before the digits ("policy CA.", "The policy number is H.O.").
pub(crate) fn letters_only(text: &str) -> Option<String> {
    let pieces = pieces(text);
    if pieces
        .iter()
        .any(|p| matches!(p, Piece::Digits(_) | Piece::Sound(_) | Piece::Repeat(_)))
    {
        return None;
    }
    let mut letters = String::new();
    for piece in pieces.iter().rev() {
        match piece {
            Piece::Letters(l)
                if !NOT_LETTERS.contains(&l.to_lowercase().as_str()) || l.len() == 1 =>
            {
                letters.insert_str(0, l);
            }
            _ => break,
        }
    }
    (1..=MAX_LETTERS)
        .contains(&letters.len())
        .then_some(letters)
}

/// The identifier in `text`: the longest, the first of equals (see [`read_all`] for `strict`).
pub(crate) fn read(text: &str, strict: bool) -> Option<String> {
    let all = read_all(text, strict);
    let longest = all.iter().map(String::len).max()?;
    all.into_iter().find(|id| id.len() == longest)
}

/// The policy number in `text`, written or spelled ("AB-12345", "A B one two three four five"). Upper
/// case, no separators.
pub fn parse_policy_number(text: &str) -> Option<String> {
    read(text, false)
}

/// How to read an identifier back: one character at a time, digits in groups of three or four.
pub(crate) fn spoken(value: &str) -> String {
    let letters: Vec<String> = value
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .map(String::from)
        .collect();
    let digits: String = value.chars().skip(letters.len()).collect();
    let mut groups: Vec<String> = Vec::new();
    let chars: Vec<char> = digits.chars().collect();
    let mut at = 0;
    while at < chars.len() {
        let left = chars.len() - at;
        let take = if left == 4 || left > 6 {
            4.min(left)
        } else {
            3.min(left)
        };
        let group: Vec<String> = chars[at..at + take].iter().map(char::to_string).collect();
        groups.push(group.join(" "));
        at += take;
    }
    let mut parts = letters;
    parts.extend(groups);
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_as_recognisers_write_them() {
        for (text, expected) in [
            ("my policy number is AB-12345", Some("AB12345")),
            ("POL 998877", Some("POL998877")),
            ("My policy number is A B 1 2 3 4 5.", Some("AB12345")),
            ("it's A B one two three four five", Some("AB12345")),
            (
                "The policy is H O four four seven two one nine.",
                Some("HO447219"),
            ),
            ("a B-447-219", Some("AB447219")),
            ("It's a B 4 4 7, 2 1 9.", Some("AB447219")),
            ("HO 44 72 19", Some("HO447219")),
            ("AB for eight two one three", Some("AB48213")),
            ("A B double four eight one three", Some("AB44813")),
            ("bee jay one two three four", Some("BJ1234")),
            ("Policy CA-771209.", Some("CA771209")),
            ("ab48213", Some("AB48213")),
            ("The policy is h0447219", Some("HO447219")),
            (
                "Let me look, the policy number is H0330981.",
                Some("HO330981"),
            ),
            ("The policy number is ho 330,981.", Some("HO330981")),
            ("My policy number is 330981.", None),
            ("Policy number is 330981.", None),
            ("I have 2 cars and 12345 problems", None),
            ("A B C", None),
            ("I was going to the shop", None),
        ] {
            assert_eq!(read(text, false).as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn letters_said_before_a_pause_are_held_for_the_digits() {
        for (said, letters) in [
            ("policy CA.", Some("CA")),
            ("It's policy AB.", Some("AB")),
            ("The policy number is H.O.", Some("HO")),
            ("My policy number is A B", Some("AB")),
            ("OK.", None),
            ("Let me look.", None),
            ("policy CA 771", None),
            ("I'm David.", None),
        ] {
            assert_eq!(letters_only(said).as_deref(), letters, "{said}");
        }
    }

    #[test]
    fn without_a_cue_only_the_written_form_counts() {
        assert_eq!(read("A 2019 Honda Civic.", true), None);
        assert_eq!(
            read("Hi, this is Tom Baker, policy AU-300451.", true).as_deref(),
            Some("AU300451")
        );
        assert_eq!(read("It's HM-207716.", true).as_deref(), Some("HM207716"));
        assert_eq!(read("At 44 Lake Drive in Madison.", true), None);
    }

    #[test]
    fn identifiers_are_read_back_a_character_at_a_time() {
        assert_eq!(spoken("AB48213"), "A, B, 4 8 2, 1 3");
        assert_eq!(spoken("HO447219"), "H, O, 4 4 7, 2 1 9");
    }
}
