//! Personal data in free text (a transcript, a log line): phone numbers, e-mail addresses, payment card
//! numbers and IBANs, found and masked. Card numbers must pass the Luhn check and IBANs the ISO 7064
//! mod-97 check, so an order number or a date is not mistaken for one; phone numbers are digit runs of 7
//! to 15 digits (E.164's limit) that are neither, and longer runs (an account, a misheard card) are masked
//! as numbers. A masked value keeps its kind and its last digits, so a
//! log still tells an operator which number a line is about without exposing it. Numbers and addresses
//! read out in words, as a caller says them and a recogniser writes them, are found too ([`spoken`]).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

pub mod corpus;
mod model;
mod spoken;

pub use model::{MaskedModel, masked_request};

/// What kind of personal data was masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiKind {
    /// A telephone number.
    Phone,
    /// An e-mail address.
    Email,
    /// A payment card number (Luhn-valid).
    Card,
    /// An international bank account number (mod-97-valid).
    Iban,
    /// A run of 16 or more digits that is neither a card nor a phone number: an account number, a card
    /// number misheard by a digit, or a recogniser repeating digit groups after a card's first digits.
    Number,
}

impl PiiKind {
    fn label(self) -> &'static str {
        match self {
            PiiKind::Phone => "phone",
            PiiKind::Email => "email",
            PiiKind::Card => "card",
            PiiKind::Iban => "iban",
            PiiKind::Number => "number",
        }
    }

    /// Trailing digits left visible.
    fn visible_digits(self) -> usize {
        match self {
            PiiKind::Phone | PiiKind::Card | PiiKind::Iban | PiiKind::Number => 4,
            PiiKind::Email => 0,
        }
    }
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b[a-z0-9][a-z0-9._%+-]*@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.[a-z]{2,}\b")
        .unwrap_or_else(|e| unreachable!("constant pattern: {e}"))
});

static IBAN: LazyLock<Regex> = LazyLock::new(|| {
    // Printed in groups of four, or compact; the last group may be shorter.
    Regex::new(r"(?i)\b[a-z]{2}[0-9]{2}(?: ?[a-z0-9]{4}){2,7}(?: ?[a-z0-9]{1,3})?\b")
        .unwrap_or_else(|e| unreachable!("constant pattern: {e}"))
});

/// Digit runs with the separators people and recognisers write inside numbers.
static DIGITS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\+?\(?[0-9](?:[0-9 \-.()]*[0-9])?")
        .unwrap_or_else(|e| unreachable!("constant pattern: {e}"))
});

/// ISO dates and clock times look like digit runs but are not personal data.
static NOT_A_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$|^[0-9]{1,2}[:.][0-9]{2}$")
        .unwrap_or_else(|e| unreachable!("constant pattern: {e}"))
});

/// Whether `digits` pass the Luhn check (payment cards).
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let Some(mut d) = c.to_digit(10) else {
            return false;
        };
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum % 10 == 0
}

/// Whether `iban` (spaces allowed) passes ISO 13616's mod-97 check.
pub fn iban_valid(iban: &str) -> bool {
    let compact: String = iban.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) || !compact.is_ascii() {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let value = match c.to_ascii_uppercase() {
            d @ '0'..='9' => d as u32 - '0' as u32,
            l @ 'A'..='Z' => l as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        let width = if value >= 10 { 100 } else { 10 };
        remainder = (remainder * width + value) % 97;
    }
    remainder == 1
}

/// What a run of digits is: 13 to 19 passing Luhn a card, 7 to 15 a phone number, 16 or more another long
/// number (an account, a card misheard by a digit, or a recogniser looping on digit groups after a card's
/// first digits: "4,111,111,111,100,100,…"); anything shorter is not personal on its own.
pub(crate) fn kind_of_digits(digits: &str) -> Option<PiiKind> {
    if (13..=19).contains(&digits.len()) && luhn_valid(digits) {
        Some(PiiKind::Card)
    } else if (7..=15).contains(&digits.len()) {
        Some(PiiKind::Phone)
    } else if digits.len() >= 16 {
        Some(PiiKind::Number)
    } else {
        None
    }
}

/// `[kind …1234]`: the kind and the last digits of what was there.
fn placeholder(kind: PiiKind, original: &str) -> String {
    let digits: Vec<char> = original.chars().filter(char::is_ascii_digit).collect();
    let shown = kind.visible_digits().min(digits.len().saturating_sub(4));
    if shown == 0 {
        return format!("[{}]", kind.label());
    }
    let tail: String = digits[digits.len() - shown..].iter().collect();
    format!("[{} …{tail}]", kind.label())
}

/// Replaces each match of `pattern` that `accept` confirms.
fn replace_checked<'t>(
    text: Cow<'t, str>,
    pattern: &Regex,
    mut accept: impl FnMut(&str) -> Option<PiiKind>,
) -> Cow<'t, str> {
    let mut out = String::new();
    let mut last = 0;
    for m in pattern.find_iter(&text) {
        if let Some(kind) = accept(m.as_str()) {
            out.push_str(&text[last..m.start()]);
            out.push_str(&placeholder(kind, m.as_str()));
            last = m.end();
        }
    }
    if last == 0 {
        return text;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

/// `text` with every phone number, e-mail address, card number and IBAN masked, written in digits or
/// said in words. Borrowed when there was nothing to mask, so the common case (a line without personal
/// data) costs no allocation.
pub fn mask_pii(text: &str) -> Cow<'_, str> {
    let text = replace_checked(Cow::Borrowed(text), &EMAIL, |_| Some(PiiKind::Email));
    let text = replace_checked(text, &IBAN, |m| iban_valid(m).then_some(PiiKind::Iban));
    let text = match spoken::mask_spoken(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(masked) => Cow::Owned(masked),
    };
    replace_checked(text, &DIGITS, |m| {
        let run = m.trim_matches(|c: char| c == '(' || c == ')');
        if NOT_A_NUMBER.is_match(run) {
            return None;
        }
        let digits: String = run.chars().filter(char::is_ascii_digit).collect();
        kind_of_digits(&digits)
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn masks_each_kind_and_keeps_the_last_digits() {
        let cases = [
            (
                "call me on +1 (415) 555-0134 please",
                "call me on [phone …0134] please",
            ),
            ("my number is 07700 900123", "my number is [phone …0123]"),
            (
                "write to ana.lopez+claims@example.co.uk.",
                "write to [email].",
            ),
            (
                "card 4111 1111 1111 1111 exp 12/27",
                "card [card …1111] exp 12/27",
            ),
            (
                "IBAN GB82 WEST 1234 5698 7654 32 thanks",
                "IBAN [iban …5432] thanks",
            ),
            ("de89370400440532013000", "[iban …3000]"),
            // 16 digits failing Luhn: an account, or a card misheard by a digit.
            ("order 1234 5678 9012 3456", "order [number …3456]"),
            // Whisper looping on digit groups after a card's first digits (a partial seen in a call).
            (
                "My card number is 4,111,111,111,100,100,100,100,100,100,100,100,100,",
                "My card number is [number …0100],",
            ),
        ];
        for (text, masked) in cases {
            assert_eq!(mask_pii(text), masked, "{text}");
        }
    }

    #[test]
    fn leaves_what_is_not_personal_data() {
        for text in [
            "the accident was on 2026-11-28 at 14:30",
            "policy AB-12345, claim 4472, about 2,000 dollars",
            "call back between 9 and 5",
        ] {
            assert!(
                matches!(mask_pii(text), Cow::Borrowed(_)),
                "{text} -> {}",
                mask_pii(text)
            );
        }
    }

    #[test]
    fn luhn_and_mod97_match_published_examples() {
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("79927398710"));
        assert!(luhn_valid("5555555555554444"));
        assert!(iban_valid("GB82 WEST 1234 5698 7654 32"));
        assert!(iban_valid("FR1420041010050500013M02606"));
        assert!(!iban_valid("GB82 WEST 1234 5698 7654 33"));
    }

    proptest! {
        /// No digit of a phone number or card survives masking but the last four, whatever surrounds it
        /// (words of consonants only: a vowel could spell a digit, "o" or "one", that joins the number).
        #[test]
        fn no_number_leaks(prefix in "[b-df-hj-np-tv-z ]{0,20}", number in "[2-9][0-9]{9}", suffix in "[b-df-hj-np-tv-z ]{0,20}") {
            let text = format!("{prefix} {number} {suffix}");
            let masked = mask_pii(&text);
            prop_assert!(!masked.contains(&number[..6]), "{masked}");
            prop_assert!(masked.contains(&number[6..]));
        }

        /// Masking never panics and never grows personal data back: masking twice changes nothing.
        #[test]
        fn masking_is_idempotent(text in "\\PC{0,80}") {
            let once = mask_pii(&text).into_owned();
            prop_assert_eq!(mask_pii(&once).into_owned(), once.clone());
        }
    }
}
