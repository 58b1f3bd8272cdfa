//! A corpus to measure [`mask_pii`](super::mask_pii) on (`switchboard bench pii` and the tests): personal
//! data in the forms callers say it and recognisers write it, each in a sentence with the exact text
//! expected after masking, and ordinary call sentences (dates, times, amounts, counts, house numbers,
//! "at" and "dot" in their usual senses) that must come out unchanged. The cases are generated from a
//! seed: the numbers first, then their spoken forms, so the expectation never comes from the masker.

use super::{PiiKind, luhn_valid, mask_pii, placeholder};
use crate::numbers::{TENS, UNITS};

/// One sentence holding personal data, and what it must read after masking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiiCase {
    /// How the value is rendered ("digit words", "pairs", "written groups", …), for the report.
    pub style: &'static str,
    /// What kind of data it is.
    pub kind: PiiKind,
    /// The sentence as a recogniser would write it.
    pub text: String,
    /// The sentence with the value, and only the value, masked.
    pub masked: String,
    /// What must not be readable after masking: the value's digits, or an e-mail address's surname.
    pub secret: String,
}

/// How the masker did on a corpus.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PiiScore {
    /// Sentences with personal data.
    pub cases: usize,
    /// Of those, masked exactly as expected.
    pub caught: usize,
    /// Ordinary sentences.
    pub ordinary: usize,
    /// Of those, changed by the masker.
    pub false_positives: usize,
    /// Cases missed: (style, text, what the masker made of it).
    pub missed: Vec<(&'static str, String, String)>,
    /// Ordinary sentences the masker changed: (text, what it made of it).
    pub wrongly_masked: Vec<(String, String)>,
}

impl PiiScore {
    /// Share of cases masked exactly.
    pub fn recall(&self) -> f64 {
        self.caught as f64 / self.cases.max(1) as f64
    }

    /// Share of ordinary sentences changed.
    pub fn false_positive_rate(&self) -> f64 {
        self.false_positives as f64 / self.ordinary.max(1) as f64
    }
}

/// Masks every sentence and compares.
pub fn score(cases: &[PiiCase], ordinary: &[String]) -> PiiScore {
    let mut score = PiiScore {
        cases: cases.len(),
        ordinary: ordinary.len(),
        ..PiiScore::default()
    };
    for case in cases {
        let got = mask_pii(&case.text);
        if got == case.masked {
            score.caught += 1;
        } else {
            score
                .missed
                .push((case.style, case.text.clone(), got.into_owned()));
        }
    }
    for sentence in ordinary {
        let got = mask_pii(sentence);
        if got != sentence.as_str() {
            score.false_positives += 1;
            score
                .wrongly_masked
                .push((sentence.clone(), got.into_owned()));
        }
    }
    score
}

/// A small seeded generator (SplitMix64): the same corpus on every machine.
#[derive(Debug)]
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

fn digit_word(rng: &mut Seeded, d: char) -> &'static str {
    match d {
        '0' if rng.chance(50) => "oh",
        _ => UNITS[(d as u8 - b'0') as usize],
    }
}

/// Digits read one by one, with "double" and "triple" for repeats now and then.
fn read_digits(rng: &mut Seeded, digits: &str, repeats: bool) -> Vec<String> {
    let chars: Vec<char> = digits.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let same = chars[i..].iter().take_while(|&&c| c == chars[i]).count();
        if repeats && same >= 3 && rng.chance(50) {
            out.push(format!("triple {}", digit_word(rng, chars[i])));
            i += 3;
        } else if repeats && same >= 2 && rng.chance(60) {
            out.push(format!("double {}", digit_word(rng, chars[i])));
            i += 2;
        } else {
            out.push(digit_word(rng, chars[i]).to_owned());
            i += 1;
        }
    }
    out
}

/// Digits read in pairs where a pair reads as a number ("four fifteen", "oh one thirty four").
fn read_pairs(rng: &mut Seeded, digits: &str) -> Vec<String> {
    let chars: Vec<char> = digits.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        // A pair ending in 0 ("twenty") is read digit by digit: "twenty" and a digit after it would read
        // as one number ("twenty five"), for a listener as for the masker.
        if i + 1 < chars.len() && chars[i] != '0' && chars[i + 1] != '0' && rng.chance(60) {
            let (a, b) = (
                (chars[i] as u8 - b'0') as usize,
                (chars[i + 1] as u8 - b'0') as usize,
            );
            if a == 1 {
                out.push(UNITS[10 + b].to_owned());
            } else {
                out.push(format!("{} {}", TENS[a - 2], UNITS[b]));
            }
            i += 2;
        } else {
            out.push(digit_word(rng, chars[i]).to_owned());
            i += 1;
        }
    }
    out
}

/// Groups of `sizes` digits from `digits`.
fn groups<'a>(digits: &'a str, sizes: &[usize]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut at = 0;
    for &n in sizes {
        out.push(&digits[at..at + n]);
        at += n;
    }
    out
}

/// Spoken groups joined the ways recognisers write pauses.
fn join_spoken(rng: &mut Seeded, parts: Vec<String>) -> String {
    let joiner = *rng.pick(&[", ", " ", " dash ", ". ", " - "]);
    parts.join(joiner)
}

fn phone_digits(rng: &mut Seeded) -> String {
    // North American: an area code and exchange not starting with 0 or 1.
    format!(
        "{}{}{}{}{}",
        2 + rng.below(8),
        rng.digits(2),
        2 + rng.below(8),
        rng.digits(2),
        rng.digits(4)
    )
}

fn card_digits(rng: &mut Seeded, len: usize, prefix: &str) -> String {
    loop {
        let body = format!("{prefix}{}", rng.digits(len - prefix.len() - 1));
        for check in 0..10 {
            let candidate = format!("{body}{check}");
            if luhn_valid(&candidate) {
                return candidate;
            }
        }
    }
}

const PHONE_FRAMES: [(&str, &str); 8] = [
    ("my number is ", ""),
    ("you can reach me on ", ", thanks."),
    ("call me back at ", " please"),
    ("It's ", "."),
    ("the best number is ", " after five"),
    ("Yeah, ", ", that's my cell."),
    ("", ""),
    ("sure, it's ", " okay"),
];
const CARD_FRAMES: [(&str, &str); 5] = [
    ("the card number is ", ""),
    ("my card is ", ", expiry next year."),
    ("okay, ", ""),
    ("it's ", " on the Visa"),
    ("", " is the card"),
];
const EMAIL_FRAMES: [(&str, &str); 5] = [
    ("my email is ", ""),
    ("you can write to ", " anytime."),
    ("it's ", ", all lower case"),
    ("send it to ", " please"),
    ("", ""),
];
const NAMES: [&str; 12] = [
    "ana", "john", "maria", "lee", "sam", "priya", "olga", "tom", "fatima", "chen", "lucas", "nora",
];
const SURNAMES: [&str; 10] = [
    "lopez", "smith", "garcia", "nguyen", "kowalski", "patel", "brown", "ito", "okafor", "martin",
];
const DOMAINS: [&[&str]; 8] = [
    &["gmail", "com"],
    &["example", "org"],
    &["mail", "co", "uk"],
    &["outlook", "com"],
    &["web", "de"],
    &["acme-insurance", "net"],
    &["yahoo", "fr"],
    &["proton", "me"],
];

/// A case's value in a sentence of `frames`, with its masked form and its secret.
struct Value<'a> {
    style: &'static str,
    kind: PiiKind,
    said: &'a str,
    mask: String,
    secret: String,
}

fn framed(rng: &mut Seeded, frames: &[(&str, &str)], value: Value<'_>) -> PiiCase {
    let (before, after) = *rng.pick(frames);
    PiiCase {
        style: value.style,
        kind: value.kind,
        text: format!("{before}{}{after}", value.said),
        masked: format!("{before}{}{after}", value.mask),
        secret: value.secret,
    }
}

fn phone_case(rng: &mut Seeded, style: usize) -> PiiCase {
    let digits = phone_digits(rng);
    let g = groups(&digits, &[3, 3, 4]);
    let (name, value, shown) = match style {
        0 => {
            let parts = g
                .iter()
                .map(|p| read_digits(rng, p, false).join(" "))
                .collect();
            ("digit words", join_spoken(rng, parts), digits.clone())
        }
        1 => {
            let parts = g
                .iter()
                .map(|p| read_digits(rng, p, true).join(" "))
                .collect();
            ("double and triple", join_spoken(rng, parts), digits.clone())
        }
        2 => {
            let parts = g.iter().map(|p| read_pairs(rng, p).join(" ")).collect();
            ("pairs", join_spoken(rng, parts), digits.clone())
        }
        3 => {
            let written = match rng.below(4) {
                0 => format!("{}-{}-{}", g[0], g[1], g[2]),
                1 => format!("({}) {}-{}", g[0], g[1], g[2]),
                2 => format!("{} {} {}", g[0], g[1], g[2]),
                _ => format!("{}.{}.{}", g[0], g[1], g[2]),
            };
            ("written groups", written, digits.clone())
        }
        4 => {
            let tail = read_digits(rng, g[2], false).join(" ");
            (
                "digits then words",
                format!("{} {} {tail}", g[0], g[1]),
                digits.clone(),
            )
        }
        5 => {
            // The United Kingdom, said with its country code.
            let national = format!("20{}", rng.digits(8));
            let said = read_digits(rng, &national, true).join(" ");
            let lead = *rng.pick(&["plus four four", "double oh four four"]);
            let full = if lead.starts_with("plus") {
                format!("+44{national}")
            } else {
                format!("0044{national}")
            };
            ("international in words", format!("{lead} {said}"), full)
        }
        6 => {
            let national = format!("{}{}", 1 + rng.below(9), rng.digits(8));
            let g = groups(&national, &[1, 2, 2, 2, 2]);
            let written = format!("+33 {} {} {} {} {}", g[0], g[1], g[2], g[3], g[4]);
            ("international written", written, format!("33{national}"))
        }
        _ => {
            let number = format!("800{}", rng.digits(7));
            let said = format!(
                "one {} hundred {}",
                UNITS[8],
                read_digits(rng, &number[3..], false).join(" ")
            );
            ("toll free", said, format!("1{number}"))
        }
    };
    let mask = placeholder(PiiKind::Phone, &shown);
    let secret = shown.trim_start_matches('+').to_owned();
    framed(
        rng,
        &PHONE_FRAMES,
        Value {
            style: name,
            kind: PiiKind::Phone,
            said: &value,
            mask,
            secret,
        },
    )
}

fn card_case(rng: &mut Seeded, style: usize) -> PiiCase {
    let (digits, sizes): (String, &[usize]) = if rng.chance(20) {
        (card_digits(rng, 15, "37"), &[4, 6, 5])
    } else {
        let prefix = *rng.pick(&["4", "51", "55", "6011"]);
        (card_digits(rng, 16, prefix), &[4, 4, 4, 4])
    };
    let g = groups(&digits, sizes);
    let (name, value) = match style {
        0 => ("card written in groups", g.join(*rng.pick(&[" ", "-"]))),
        1 => ("card written compact", digits.clone()),
        _ => {
            let parts = g
                .iter()
                .map(|p| read_digits(rng, p, true).join(" "))
                .collect();
            ("card in words", join_spoken(rng, parts))
        }
    };
    let mask = placeholder(PiiKind::Card, &digits);
    framed(
        rng,
        &CARD_FRAMES,
        Value {
            style: name,
            kind: PiiKind::Card,
            said: &value,
            mask,
            secret: digits.clone(),
        },
    )
}

fn email_case(rng: &mut Seeded, style: usize) -> PiiCase {
    let first = *rng.pick(&NAMES);
    let last = *rng.pick(&SURNAMES);
    let domain = *rng.pick(&DOMAINS);
    let number = if rng.chance(30) {
        (10 + rng.below(89)).to_string()
    } else {
        String::new()
    };
    let (name, value) = match style {
        0 => {
            let joiner = *rng.pick(&[" dot ", " underscore ", ""]);
            let at = *rng.pick(&[" at ", " at sign "]);
            (
                "said in words",
                format!("{first}{joiner}{last}{number}{at}{}", domain.join(" dot ")),
            )
        }
        1 => (
            "half written",
            format!("{first}.{last}{number} at {}", domain.join(".")),
        ),
        _ => (
            "written",
            format!("{first}_{last}{number}@{}", domain.join(".")),
        ),
    };
    framed(
        rng,
        &EMAIL_FRAMES,
        Value {
            style: name,
            kind: PiiKind::Email,
            said: &value,
            mask: "[email]".into(),
            secret: last.to_owned(),
        },
    )
}

/// Whether `text` still shows `case`'s secret: five consecutive digits of its value (written as digits or
/// said in words, "double five" and "fifteen" included), or an e-mail address's surname.
pub fn leaks(case: &PiiCase, text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    if case.kind == PiiKind::Email {
        return lower.contains(&case.secret);
    }
    let runs = super::spoken::digit_runs(text);
    let secret: Vec<char> = case.secret.chars().collect();
    secret
        .windows(5)
        .map(|w| w.iter().collect::<String>())
        .any(|window| runs.iter().any(|run| run.contains(&window)))
}

/// `count` sentences with personal data (at least 300 makes a bench), spread over every style.
pub fn pii_cases(count: usize) -> Vec<PiiCase> {
    let mut rng = Seeded(0x5BC0_FFEE);
    (0..count)
        .map(|i| match i % 5 {
            0..=2 => phone_case(&mut rng, (i / 5 + i) % 8),
            3 => card_case(&mut rng, (i / 5) % 3),
            _ => email_case(&mut rng, (i / 5) % 3),
        })
        .collect()
}

const ORDINARY: [&str; 24] = [
    "it happened on {date} at {time}",
    "the repair estimate came to {amount} dollars",
    "I was going about {small} miles an hour",
    "we were at the {place} when it started",
    "my policy number is A B {few}",
    "there were {small} people in the car",
    "the other driver was at fault, I think",
    "it's been {small} days and nobody called me back",
    "I live at {house} {street}",
    "can you call me back around {time}",
    "my zip code is {zip}",
    "the claim reference you gave me was {few}",
    "I paid {amount} for the windshield",
    "it was {year}, I'm pretty sure",
    "press {digit} for sales or {digit} for support",
    "the flight number was {few}",
    "is that everything, or do you need more from me?",
    "I had to wait at the {place} dot, dot, dot forever",
    "the tree fell on the roof around {time} last night",
    "my daughter is {small} and she was in the back seat",
    "we got there at {time} and left at {time}",
    "they quoted me {amount} at first and then {amount}",
    "room {house} on floor {digit}",
    "nobody was hurt, thank goodness",
];

fn ordinary_fill(rng: &mut Seeded, slot: &str) -> String {
    match slot {
        "date" => format!(
            "{} {}",
            rng.pick(&["March", "the", "June", "October"]),
            rng.pick(&["third", "twenty first", "fifth", "2026-11-28", "12/03"])
        ),
        "time" => (*rng.pick(&[
            "two thirty",
            "ten fifteen",
            "14:30",
            "9.45",
            "half past six",
            "eleven oh five",
            "seven",
        ]))
        .to_owned(),
        "amount" => (*rng.pick(&[
            "two thousand five hundred",
            "3,400",
            "twelve hundred",
            "about five hundred",
            "1,250.50",
            "forty thousand",
        ]))
        .to_owned(),
        "small" => (*rng.pick(&[
            "forty five",
            "three",
            "twelve",
            "sixty",
            "two or three",
            "10",
        ]))
        .to_owned(),
        "place" => (*rng.pick(&["office", "mall", "gas station", "hospital", "corner"])).to_owned(),
        "few" => (*rng.pick(&[
            "four four seven two one",
            "447 219",
            "B 447",
            "two one four",
            "AB-12345",
        ]))
        .to_owned(),
        "house" => (*rng.pick(&["twelve", "221", "one fifteen", "forty two"])).to_owned(),
        "street" => (*rng.pick(&["Main Street", "Baker Street", "Elm Avenue"])).to_owned(),
        "zip" => (*rng.pick(&["nine four one one oh", "94110", "SW1A 1AA"])).to_owned(),
        "year" => (*rng.pick(&["twenty twenty six", "2025", "nineteen ninety nine"])).to_owned(),
        "digit" => (*rng.pick(&["one", "two", "three", "nine"])).to_owned(),
        _ => slot.to_owned(),
    }
}

/// `count` ordinary call sentences, none holding personal data.
pub fn ordinary_sentences(count: usize) -> Vec<String> {
    let mut rng = Seeded(0x00DD_1A27);
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let template = *rng.pick(&ORDINARY);
        let mut sentence = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            sentence.push_str(&rest[..open]);
            let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
            sentence.push_str(&ordinary_fill(&mut rng, &rest[open + 1..close]));
            rest = &rest[(close + 1).min(rest.len())..];
        }
        sentence.push_str(rest);
        out.push(sentence);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The goal of issue 25: recall at least 99 % and at most 1 % false positives on 300 + 300.
    #[test]
    fn the_masker_catches_spoken_and_written_personal_data_and_leaves_ordinary_sentences() {
        let cases = pii_cases(300);
        let ordinary = ordinary_sentences(300);
        let score = score(&cases, &ordinary);
        assert!(
            score.recall() >= 0.99,
            "recall {:.3}; missed: {:#?}",
            score.recall(),
            score.missed
        );
        assert!(
            score.false_positive_rate() <= 0.01,
            "false positives {:.3}: {:#?}",
            score.false_positive_rate(),
            score.wrongly_masked
        );
    }

    #[test]
    fn the_corpus_covers_every_style_and_expects_only_the_value_masked() {
        let cases = pii_cases(300);
        let mut styles: Vec<&str> = cases.iter().map(|c| c.style).collect();
        styles.sort_unstable();
        styles.dedup();
        assert!(styles.len() >= 12, "{styles:?}");
        for case in &cases {
            assert_ne!(case.text, case.masked);
            assert!(case.masked.contains('['), "{case:?}");
            assert!(
                leaks(case, &case.text),
                "the secret is in the sentence: {case:?}"
            );
            assert!(
                !leaks(case, &case.masked),
                "and not in its masked form: {case:?}"
            );
        }
        assert_eq!(pii_cases(300), cases, "the same corpus every time");
    }
}
