//! Ways to reach the caller: phone numbers (normalised to E.164, from digits or words) and e-mail
//! addresses (written, spoken, or half of each as a recogniser writes them).

use super::EMAIL;
use crate::numbers::{digit_word, words};

/// The phone number in `text` as E.164 (`+14155550134`), from digits or words ("plus one four one five…",
/// "double five", "oh"). Numbers without a country code get `country_code`; a leading trunk `0` is
/// dropped and `00` read as `+`. `None` unless 8 to 15 digits result.
pub fn normalize_phone(text: &str, country_code: &str) -> Option<String> {
    let mut best: Option<(bool, String)> = None;
    let mut plus = false;
    let mut digits = String::new();
    let mut repeat = 1;
    let finish = |plus: bool, digits: &mut String, best: &mut Option<(bool, String)>| {
        if digits.len() > best.as_ref().map_or(0, |(_, d)| d.len()) {
            *best = Some((plus, std::mem::take(digits)));
        }
        digits.clear();
    };
    let words: Vec<&str> = text
        .split(|c: char| {
            c.is_whitespace() || c == ',' || c == '-' || c == '.' || c == '(' || c == ')'
        })
        .filter(|w| !w.is_empty())
        .collect();
    for (i, word) in words.iter().enumerate() {
        let lower = word.to_lowercase();
        // Whisper writes a number's first "four" or "two" as "for" or "to" when digits follow
        // ("call me back on for 155550134"); inside a run, or before a word, they are words.
        if digits.is_empty()
            && let Some(d) = sounds_like_digit(&lower)
            && words.get(i + 1).is_some_and(|next| starts_digits(next))
        {
            digits.push(d);
            continue;
        }
        if lower == "plus" || (lower.starts_with('+') && digits.is_empty()) {
            finish(plus, &mut digits, &mut best);
            plus = true;
            if lower == "plus" {
                continue;
            }
        }
        let bare = lower.trim_start_matches('+');
        if !bare.is_empty() && bare.chars().all(|c| c.is_ascii_digit()) {
            digits.push_str(&bare.repeat(repeat));
            repeat = 1;
        } else if let Some(d) = digit_word(bare) {
            // "o" only counts between digits ("four o five"), not as a word on its own.
            if bare == "o" && digits.is_empty() {
                finish(plus, &mut digits, &mut best);
                plus = false;
                continue;
            }
            for _ in 0..repeat {
                digits.push(d);
            }
            repeat = 1;
        } else if bare == "double" {
            repeat = 2;
        } else if bare == "triple" {
            repeat = 3;
        } else {
            finish(plus, &mut digits, &mut best);
            plus = false;
            repeat = 1;
        }
    }
    finish(plus, &mut digits, &mut best);
    let (plus, digits) = best?;
    let e164 = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_owned()
    } else if country_code == "1" && digits.len() == 11 && digits.starts_with('1') {
        digits
    } else if country_code == "1" && digits.len() == 10 {
        format!("1{digits}")
    } else if let Some(national) = digits.strip_prefix('0') {
        format!("{country_code}{national}")
    } else if country_code != "1" && digits.len() >= 7 {
        format!("{country_code}{digits}")
    } else {
        return None;
    };
    (8..=15).contains(&e164.len()).then(|| format!("+{e164}"))
}

/// "for" / "to" / "too" heard where a caller said "four" / "two".
fn sounds_like_digit(word: &str) -> Option<char> {
    match word {
        "for" => Some('4'),
        "to" | "too" => Some('2'),
        _ => None,
    }
}

/// Whether `word` is digits or a digit's name.
fn starts_digits(word: &str) -> bool {
    let lower = word.to_lowercase();
    lower.bytes().all(|b| b.is_ascii_digit()) || digit_word(&lower).is_some()
}

/// Words that end a sentence before an address rather than begin its local part ("Sure.
/// davis@example.com"), lower case.
const NOT_LOCAL_PARTS: &[&str] = &[
    "it's", "its", "it", "is", "sure", "yes", "yeah", "okay", "ok", "thanks", "thank", "you", "so",
    "well", "right", "mail", "email", "e-mail", "address", "that", "that's", "here", "no", "hi",
    "hello", "um", "uh", "oh", "please", "mine", "me", "my", "and", "course", "sorry", "fine",
];

/// `text` with a local part that Whisper split at a spoken "dot" joined again: it writes "dot" between
/// two words as a full stop, so "james dot wilson at example.com" comes out "James. Wilson at
/// example.com" or "James. Wilson@example.com", and the address would keep only "wilson".
fn local_part_joined(text: &str) -> String {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let joined = tokens[i]
            .strip_suffix('.')
            .filter(|word| {
                word.chars().count() >= 2
                    && word
                        .chars()
                        .all(|c| c.is_alphabetic() || c == '\'' || c == '-')
                    && !NOT_LOCAL_PARTS.contains(&word.to_lowercase().as_str())
            })
            .zip(tokens.get(i + 1))
            .filter(|(_, next)| {
                next.starts_with(|c: char| c.is_alphanumeric())
                    && (next.contains('@')
                        || tokens
                            .get(i + 2)
                            .is_some_and(|w| w.eq_ignore_ascii_case("at")))
            });
        match joined {
            Some((word, next)) => {
                out.push(format!("{word}.{next}"));
                i += 2;
            }
            None => {
                out.push(tokens[i].to_owned());
                i += 1;
            }
        }
    }
    out.join(" ")
}

/// The e-mail address in `text`, written or spoken ("ana dot lopez at example dot com",
/// "j underscore smith at mail dot co dot uk", letters spelled one by one).
pub fn normalize_email(text: &str) -> Option<String> {
    let text = &local_part_joined(text);
    if let Some(m) = EMAIL.find(text) {
        return Some(m.as_str().to_lowercase());
    }
    let words = words(text);
    let at = words.iter().position(|w| w == "at" || w == "@")?;
    let separator = |w: &str| match w {
        "dot" | "period" => Some("."),
        "underscore" => Some("_"),
        "dash" | "hyphen" => Some("-"),
        _ => None,
    };
    // Local part: backwards from "at": a word (or a run of spelled letters), then separator + word pairs.
    let mut start = at;
    let take_word = |end: usize| -> usize {
        let mut i = end;
        while i > 0
            && words[i - 1].chars().count() == 1
            && words[i - 1].chars().all(char::is_alphanumeric)
        {
            i -= 1;
        }
        if i == end && end > 0 && separator(&words[end - 1]).is_none() {
            i = end - 1;
        }
        i
    };
    let first = take_word(start);
    if first == start {
        return None;
    }
    start = first;
    while start >= 2 && separator(&words[start - 1]).is_some() {
        let before = take_word(start - 1);
        if before == start - 1 {
            break;
        }
        start = before;
    }
    let mut local = String::new();
    for w in &words[start..at] {
        local.push_str(separator(w).unwrap_or(w));
    }
    // Domain: word (dot word)+.
    let mut domain = String::new();
    let mut i = at + 1;
    let mut labels = 0;
    while let Some(label) = words.get(i) {
        if separator(label).is_some() {
            break;
        }
        domain.push_str(label);
        // "example.com" written as one word holds two labels.
        labels += label.split('.').filter(|l| !l.is_empty()).count();
        if words.get(i + 1).map(String::as_str) == Some("dot") && words.get(i + 2).is_some() {
            domain.push('.');
            i += 2;
        } else {
            break;
        }
    }
    let address = format!("{local}@{domain}");
    (labels >= 2 && EMAIL.is_match(&address)).then_some(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_written_and_spoken_become_e164() {
        let cases = [
            ("call me at +1 (415) 555-0134", "1", Some("+14155550134")),
            (
                "plus one four one five five five five zero one three four",
                "1",
                Some("+14155550134"),
            ),
            (
                "it's four one five, five five five, oh one three four",
                "1",
                Some("+14155550134"),
            ),
            (
                "four one five double five five zero one three four",
                "1",
                Some("+14155550134"),
            ),
            ("my mobile is 07700 900123", "44", Some("+447700900123")),
            ("0044 7700 900123", "1", Some("+447700900123")),
            ("extension 42", "1", None),
            // A first "four" heard as "for"; "for" and "to" elsewhere are words.
            (
                "you can call me back on for 155550134",
                "1",
                Some("+14155550134"),
            ),
            (
                "call me back on 415 555 0134 for 2 hours",
                "1",
                Some("+14155550134"),
            ),
            (
                "I'm calling for 2 reasons, my number is 415 555 0134",
                "1",
                Some("+14155550134"),
            ),
            ("my claim is 4472", "1", None),
        ];
        for (text, country, expected) in cases {
            assert_eq!(
                normalize_phone(text, country).as_deref(),
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn emails_written_and_spoken() {
        let cases = [
            (
                "it's Ana.Lopez@Example.com, thanks",
                Some("ana.lopez@example.com"),
            ),
            (
                "my email is ana dot lopez at example dot com",
                Some("ana.lopez@example.com"),
            ),
            (
                "j underscore smith at mail dot co dot uk",
                Some("j_smith@mail.co.uk"),
            ),
            ("it is a n a at gmail dot com", Some("ana@gmail.com")),
            ("ana.lopez at example.com", Some("ana.lopez@example.com")),
            ("I was at home at the time", None),
            // Whisper's full stop for a spoken "dot".
            (
                "James. Wilson at example.com.",
                Some("james.wilson@example.com"),
            ),
            ("Emily. Davis@example.com.", Some("emily.davis@example.com")),
            ("Sure. Davis@example.com", Some("davis@example.com")),
            ("I was home. Later at the station", None),
        ];
        for (text, expected) in cases {
            assert_eq!(normalize_email(text).as_deref(), expected, "{text}");
        }
    }
}
