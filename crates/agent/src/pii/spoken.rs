//! Personal data as callers say it and recognisers write it down: numbers read out digit by digit in
//! words ("four one five, five five five, oh one three four"), in pairs ("four fifteen"), with "double"
//! and "triple", "eight hundred", a leading "plus", mixed with digit groups ("415 555 oh one three
//! four"); e-mail addresses read out ("ana dot lopez at example dot co dot uk", "bob at sign mail.com").
//! A run of digits, spoken or written in groups ("681, 493, 1439"), is judged like any number: 13 to 19
//! digits passing Luhn are a card, 7 to 15 a phone number, 16 to 24 another long number; anything
//! shorter (a time, a year, a house number), an ISO date and an amount with thousands separators are
//! left alone.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

use super::{PiiKind, placeholder};
use crate::numbers::{digit_word, small_number};

static SPOKEN_EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)\b[a-z0-9]+(?:(?:\s+(?:dot|underscore|dash|hyphen)\s+|[._-])[a-z0-9]+)*",
        r"\s+at(?:\s+(?:sign|symbol))?\s+",
        r"[a-z0-9]+(?:-[a-z0-9]+)*(?:(?:\s+dot\s+|\.)[a-z0-9]+(?:-[a-z0-9]+)*)*",
        r"(?:\s+dot\s+|\.)(?:com|org|net|edu|gov|io|co|uk|us|ca|de|fr|es|it|nl|be|ch|at|au|info|biz|me|ie)\b",
    ))
    .unwrap_or_else(|e| unreachable!("constant pattern: {e}"))
});

/// Digits that are not personal data for all their length: an ISO date, an amount with thousands
/// separators up to the hundreds of millions ("1,250,000", "3,400.50"). A recogniser writes a number read
/// out in groups that way too ("927,209,205,127"): longer ones are taken for what they most likely are.
static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{1,3}(?:,[0-9]{3}){1,2}(?:\.[0-9]+)?)$")
        .unwrap_or_else(|e| unreachable!("constant pattern: {e}"))
});

/// What a caller says just before giving a phone number ("my number is", "call me on", "my mobile's"),
/// and at most two short words a recogniser may have made of the number's first digits or of a word
/// around it ("for" for "four", "Mac at"): a shorter run of digits said there is a phone number
/// misheard, not an amount, and is masked.
static PHONE_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)\b(?:phone|mobile|cell|telephone|callback|call\s+(?:me|back)|reach\s+me|text\s+me",
        r"|(?:my|your|contact|best|home|work|cell|mobile|phone)\s+number)",
        r"(?:'s|\s+(?:is|on|at|it's|would\s+be|number))*[\s,:]*(?:[a-z]{2,4}[\s,]+){0,2}$",
    ))
    .unwrap_or_else(|e| unreachable!("constant pattern: {e}"))
});

/// Digits too few for a phone number (7) but too many to be a house number or a time: a phone number a
/// recogniser lost digits of, when said where a phone number is given.
const MISHEARD_PHONE_DIGITS: std::ops::RangeInclusive<usize> = 5..=6;

/// Words, digit groups and a plus sign, with where each is in the text.
static TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z]+|[0-9]+|\+").unwrap_or_else(|e| unreachable!("constant pattern: {e}"))
});

#[derive(Debug)]
struct Token<'t> {
    word: String,
    raw: &'t str,
    start: usize,
    end: usize,
}

/// Whether what lies between two tokens keeps them in one spoken number: spaces, commas, full stops,
/// hyphens and brackets (the pauses and groupings a recogniser writes), nothing else.
fn joins(gap: &str) -> bool {
    gap.chars()
        .all(|c| c.is_whitespace() || matches!(c, ',' | '.' | '-' | '(' | ')'))
}

/// The digits `tokens[i..]` starts with as one step of a spoken number, and how many tokens it took.
fn step(tokens: &[Token<'_>], i: usize) -> Option<(String, usize)> {
    let word = tokens[i].word.as_str();
    let next = tokens.get(i + 1).map(|t| t.word.as_str());
    if tokens[i].raw.bytes().all(|b| b.is_ascii_digit()) {
        return Some((tokens[i].raw.to_owned(), 1));
    }
    if let Some(d) = digit_word(word) {
        // "eight hundred" (a toll-free prefix) is three digits.
        if next == Some("hundred") && d != '0' {
            return Some((format!("{d}00"), 2));
        }
        return Some((d.to_string(), 1));
    }
    if let Some(n) = small_number(word)
        && (10..100).contains(&n)
    {
        // "fifty five" is two digits; "fifty" alone is "50".
        if n >= 20
            && n % 10 == 0
            && let Some(unit) = next.and_then(small_number).filter(|u| (1..10).contains(u))
        {
            return Some(((n + unit).to_string(), 2));
        }
        return Some((n.to_string(), 1));
    }
    let times = match word {
        "double" => 2,
        "triple" => 3,
        _ => return None,
    };
    let next = tokens.get(i + 1)?;
    let digit = digit_word(&next.word).or_else(|| {
        (next.raw.len() == 1)
            .then(|| next.raw.chars().next())
            .flatten()
            .filter(char::is_ascii_digit)
    })?;
    Some((std::iter::repeat_n(digit, times).collect(), 2))
}

/// A spoken number starting at token `start`: its digits (with a leading `+` if said), how many tokens
/// it took, and whether any of them was a word (a run of digit groups only is left to the written-form
/// pass).
fn run(tokens: &[Token<'_>], text: &str, start: usize) -> Option<(String, usize, bool)> {
    let mut digits = String::new();
    let mut i = start;
    let mut words = false;
    if matches!(tokens[i].word.as_str(), "plus" | "+") {
        digits.push('+');
        words = tokens[i].word == "plus";
        i += 1;
    }
    loop {
        if i >= tokens.len() || (i > start && !joins(&text[tokens[i - 1].end..tokens[i].start])) {
            break;
        }
        // "dash" and "hyphen" read out between groups.
        if i > start
            && matches!(tokens[i].word.as_str(), "dash" | "hyphen")
            && i + 1 < tokens.len()
            && joins(&text[tokens[i].end..tokens[i + 1].start])
            && step(tokens, i + 1).is_some()
        {
            i += 1;
            words = true;
            continue;
        }
        let Some((more, used)) = step(tokens, i) else {
            break;
        };
        words |= tokens[i..i + used]
            .iter()
            .any(|t| !t.raw.bytes().all(|b| b.is_ascii_digit()));
        digits.push_str(&more);
        i += used;
    }
    let count = i - start;
    (!digits.trim_start_matches('+').is_empty()).then_some((digits, count, words))
}

fn kind_of(digits: &str) -> Option<PiiKind> {
    super::kind_of_digits(digits.trim_start_matches('+'))
}

fn tokens(text: &str) -> Vec<Token<'_>> {
    TOKEN
        .find_iter(text)
        .map(|m| Token {
            word: m.as_str().to_ascii_lowercase(),
            raw: m.as_str(),
            start: m.start(),
            end: m.end(),
        })
        .collect()
}

/// The digits of every number in `text`, written or said in words, as one string each.
pub(crate) fn digit_runs(text: &str) -> Vec<String> {
    let tokens = tokens(text);
    let mut runs = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match run(&tokens, text, i) {
            Some((digits, used, _)) => {
                runs.push(digits.trim_start_matches('+').to_owned());
                i += used;
            }
            None => i += 1,
        }
    }
    runs
}

/// `text` with spoken e-mail addresses and spoken numbers masked; borrowed when there were none.
pub(super) fn mask_spoken(text: &str) -> Cow<'_, str> {
    let text: Cow<'_, str> = SPOKEN_EMAIL.replace_all(text, "[email]");
    let tokens = tokens(&text);
    let mut spans = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match run(&tokens, &text, i) {
            Some((digits, used, words)) => {
                let (mut start, mut end) = (tokens[i].start, tokens[i + used - 1].end);
                // "(415) 555-0134": the area code's brackets go with the number.
                if text[..start].ends_with('(') {
                    start -= 1;
                }
                let span = &text[start..end];
                if span.matches('(').count() > span.matches(')').count()
                    && text[end..].starts_with(')')
                {
                    end += 1;
                }
                // A run of digit groups alone is masked here too (recognisers write a number read out
                // in groups as "681, 493, 1439"), unless it is a date or an amount written as such.
                let written_quantity = !words && QUANTITY.is_match(&text[start..end]);
                let kind = kind_of(&digits).or_else(|| {
                    let bare = digits.trim_start_matches('+');
                    (MISHEARD_PHONE_DIGITS.contains(&bare.len())
                        && PHONE_CONTEXT.is_match(&text[..start]))
                    .then_some(PiiKind::Phone)
                });
                if !written_quantity && let Some(kind) = kind {
                    spans.push((start, end, placeholder(kind, &digits)));
                }
                i += used;
            }
            None => i += 1,
        }
    }
    if spans.is_empty() {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end, mask) in spans {
        out.push_str(&text[last..start]);
        out.push_str(&mask);
        last = end;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_out_in_words_are_masked_with_their_last_digits() {
        let cases = [
            (
                "my number is four one five, five five five, oh one three four thanks",
                "my number is [phone …0134] thanks",
            ),
            (
                "call me on four fifteen double five five oh one thirty four",
                "call me on [phone …0134]",
            ),
            ("it's 415 555 oh one three four.", "it's [phone …0134]."),
            (
                "plus four four two oh seven nine four six oh nine five eight",
                "[phone …0958]",
            ),
            (
                "one eight hundred five five five one two one two",
                "[phone …1212]",
            ),
            (
                "the card is four one one one one one one one one one one one one one one one",
                "the card is [card …1111]",
            ),
            (
                "seven seven dash three one two dash nine nine eight eight",
                "[phone …9988]",
            ),
            (
                "write to ana dot lopez at example dot co dot uk please",
                "write to [email] please",
            ),
            ("it's bob_lee at sign mail.com", "it's [email]"),
            // Groups a recogniser wrote with commas between them.
            (
                "My number is 681, 493, 1439.",
                "My number is [phone …1439].",
            ),
            ("It's 2-3-2, 8-4-1, 8-0-3-9.", "It's [phone …8039]."),
            ("in 927,209,205,127", "in [phone …5127]"),
            ("call (415) 555-0134 now", "call [phone …0134] now"),
            ("area code (415)", "area code (415)"),
            // Phone numbers whisper-tiny lost digits of ("4 1 5 5 5 5 0 1 0 0" said), where a caller
            // gives a number: still most of the number, still masked.
            ("my number is for 155500.", "my number is for [phone …00]."),
            ("and my number is 450100.", "and my number is [phone …00]."),
            ("call me on five five five oh one", "call me on [phone …1]"),
            // A number espeak-ng said, as whisper-tiny wrote it (`bench pii --spoken`).
            ("Call Me Mac at 838-454", "Call Me Mac at [phone …54]"),
        ];
        for (text, masked) in cases {
            assert_eq!(mask_spoken(text), masked, "{text}");
        }
    }

    #[test]
    fn ordinary_numbers_and_words_are_left_alone() {
        for text in [
            "it happened at ten thirty on March third",
            "about two thousand five hundred dollars",
            "I was going forty five, maybe fifty",
            "it was twenty twenty six",
            "press one for sales, two for support",
            "policy A B four four seven two one",
            "we were at the office dot",
            "oh, one more thing",
            "my zip code is nine four one one oh",
            "the house is worth 1,250,000 now",
            "it was on 2026-11-28",
            "my zip code is 94110",
            "my policy number is 123456",
            "the repair came to 155500 in total",
        ] {
            assert!(
                matches!(mask_spoken(text), Cow::Borrowed(_)),
                "{text} -> {}",
                mask_spoken(text)
            );
        }
    }
}
