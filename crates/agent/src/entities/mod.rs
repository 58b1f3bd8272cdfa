//! Structured entities in what a caller said, by deterministic parsers rather than the language model:
//! phone numbers (normalised to E.164), e-mail addresses (also spoken: "ana dot lopez at example dot
//! com"), dates (absolute or relative to the call: "yesterday", "last Tuesday", "March 3rd"), money
//! amounts ("$2,000", "two thousand five hundred euros") and policy numbers ("AB-12345", "A B 1 2 3 4 5",
//! read in [`crate::facts`]).

use std::sync::LazyLock;

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use regex::Regex;

use crate::facts::parse_policy_number;
use crate::numbers::{cardinal_prefix, ordinal_word, words};

mod contact;
pub use contact::{normalize_email, normalize_phone};

macro_rules! pattern {
    ($name:ident, $re:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new($re).unwrap_or_else(|e| unreachable!("constant pattern: {e}"))
        });
    };
}

pattern!(
    EMAIL,
    r"(?i)\b[a-z0-9][a-z0-9._%+-]*@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b"
);
pattern!(ISO_DATE, r"\b([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})\b");
pattern!(SLASH_DATE, r"\b([0-9]{1,2})/([0-9]{1,2})/([0-9]{2,4})\b");
pattern!(SYMBOL_AMOUNT, r"([$€£])\s?([0-9][0-9,]*(?:\.[0-9]{1,2})?)");

/// A money amount in minor units (cents) and its ISO 4217 currency, when said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount {
    /// Hundredths of the currency unit.
    pub minor_units: u64,
    /// `USD`, `EUR`, `GBP`.
    pub currency: Option<&'static str>,
}

/// Everything found in one caller turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entities {
    /// E.164 phone numbers.
    pub phones: Vec<String>,
    /// E-mail addresses, lower-cased.
    pub emails: Vec<String>,
    /// Dates.
    pub dates: Vec<NaiveDate>,
    /// Money amounts.
    pub amounts: Vec<Amount>,
    /// Policy numbers, upper-case without separators.
    pub policy_numbers: Vec<String>,
}

/// Finds the entities in `text`, said on `today`, with `country_code` (E.164 calling code, "1") for
/// numbers said without one.
pub fn extract(text: &str, today: NaiveDate, country_code: &str) -> Entities {
    Entities {
        phones: normalize_phone(text, country_code).into_iter().collect(),
        emails: normalize_email(text).into_iter().collect(),
        dates: parse_date(text, today).into_iter().collect(),
        amounts: parse_amount(text).into_iter().collect(),
        policy_numbers: parse_policy_number(text).into_iter().collect(),
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn month(word: &str) -> Option<u32> {
    // Full names, and the three-letter abbreviations recognisers sometimes write ("Nov").
    MONTHS
        .iter()
        .position(|m| *m == word || (word.len() == 3 && m.starts_with(word)))
        .map(|i| i as u32 + 1)
}

/// Whether `word` (lower case) names a day of the week or a month.
pub(crate) fn is_calendar_word(word: &str) -> bool {
    weekday(word).is_some() || MONTHS.contains(&word)
}

fn weekday(word: &str) -> Option<Weekday> {
    Some(match word {
        "monday" => Weekday::Mon,
        "tuesday" => Weekday::Tue,
        "wednesday" => Weekday::Wed,
        "thursday" => Weekday::Thu,
        "friday" => Weekday::Fri,
        "saturday" => Weekday::Sat,
        "sunday" => Weekday::Sun,
        _ => return None,
    })
}

/// A day of the month at the start of `words`: "28", "28th", "twenty-eighth", "twenty eight".
fn day_prefix(words: &[String]) -> Option<(u32, usize)> {
    let first = words.first()?;
    let digits = first.trim_end_matches(|c: char| c.is_alphabetic());
    if !digits.is_empty()
        && let Ok(d) = digits.parse::<u32>()
    {
        return (1..=31).contains(&d).then_some((d, 1));
    }
    if let Some(d) = ordinal_word(first) {
        return Some((d as u32, 1));
    }
    if let (Some(tens), Some(unit)) = (
        cardinal_prefix(&words[..1]).map(|(n, _)| n),
        words.get(1).and_then(|w| ordinal_word(w)),
    ) && (tens == 20 || tens == 30)
    {
        return Some(((tens + unit) as u32, 2));
    }
    cardinal_prefix(&words[..words.len().min(2)])
        .filter(|(n, _)| (1..=31).contains(n))
        .map(|(n, used)| (n as u32, used))
}

/// "20th", "third": a word that says a day as an ordinal.
fn is_ordinal(word: &str) -> bool {
    ordinal_word(word).is_some()
        || (word.starts_with(|c: char| c.is_ascii_digit())
            && ["st", "nd", "rd", "th"].iter().any(|s| word.ends_with(s)))
}

fn year_at(words: &[String], i: usize) -> Option<i32> {
    words
        .get(i)
        .and_then(|w| w.parse::<i32>().ok())
        .filter(|y| (1900..=2200).contains(y))
}

/// A date without a year is the last one not after `today` (callers report what happened).
fn past_date(today: NaiveDate, month: u32, day: u32, year: Option<i32>) -> Option<NaiveDate> {
    if let Some(year) = year {
        return NaiveDate::from_ymd_opt(year, month, day);
    }
    let this_year = NaiveDate::from_ymd_opt(today.year(), month, day)?;
    if this_year <= today {
        Some(this_year)
    } else {
        NaiveDate::from_ymd_opt(today.year() - 1, month, day)
    }
}

/// The date in `text`: ISO (`2026-11-28`), US (`11/28/2026`), "November 28th[, 2026]", "the 28th of
/// November", "today", "yesterday", "the day before yesterday", "[last] Tuesday", "N days ago".
pub fn parse_date(text: &str, today: NaiveDate) -> Option<NaiveDate> {
    if let Some(c) = ISO_DATE.captures(text) {
        let n = |i: usize| c[i].parse::<u32>().ok();
        return NaiveDate::from_ymd_opt(c[1].parse().ok()?, n(2)?, n(3)?);
    }
    if let Some(c) = SLASH_DATE.captures(text) {
        let n = |i: usize| c[i].parse::<i32>().ok();
        let year = n(3)?;
        let year = if year < 100 { 2000 + year } else { year };
        return NaiveDate::from_ymd_opt(year, n(1)? as u32, n(2)? as u32);
    }
    let words = words(text);
    let joined = words.join(" ");
    if joined.contains("day before yesterday") {
        return today.checked_sub_signed(Duration::days(2));
    }
    for (i, word) in words.iter().enumerate() {
        let next = words.get(i + 1).map(String::as_str);
        match (word.as_str(), next) {
            ("this", Some("morning" | "afternoon" | "evening")) | ("earlier", Some("today")) => {
                return Some(today);
            }
            ("last", Some("night")) => return today.checked_sub_signed(Duration::days(1)),
            _ => {}
        }
        match word.as_str() {
            "today" | "tonight" => return Some(today),
            "yesterday" => return today.checked_sub_signed(Duration::days(1)),
            "ago" if i >= 2 && words[i - 1].starts_with("day") => {
                let (n, _) = cardinal_prefix(&words[i - 2..i - 1])?;
                return today.checked_sub_signed(Duration::days(n as i64));
            }
            "ago" if i >= 2 && words[i - 1].starts_with("week") => {
                let n = if words[i - 2] == "a" {
                    1
                } else {
                    cardinal_prefix(&words[i - 2..i - 1])?.0
                };
                return today.checked_sub_signed(Duration::weeks(n as i64));
            }
            "ago"
                if i >= 1
                    && (words[i - 1].starts_with("hour") || words[i - 1].starts_with("minute")) =>
            {
                return Some(today);
            }
            _ => {}
        }
        // "on the 20th": a day of this month, or of the last one if it is still to come.
        if word == "the"
            && let Some((day, used)) = day_prefix(&words[i + 1..])
            && is_ordinal(&words[i + used])
            && !words
                .get(i + 1 + used)
                .is_some_and(|w| w == "of" || month(w).is_some())
        {
            let this_month = NaiveDate::from_ymd_opt(today.year(), today.month(), day);
            return match this_month {
                Some(date) if date <= today => Some(date),
                _ => {
                    let last = today.with_day(1)?.pred_opt()?;
                    NaiveDate::from_ymd_opt(last.year(), last.month(), day)
                }
            };
        }
        if let Some(m) = month(word) {
            // "November 28th, 2026"
            if let Some((day, used)) = day_prefix(&words[i + 1..]) {
                return past_date(today, m, day, year_at(&words, i + 1 + used));
            }
            // "the 28th of November 2026"
            let before = if i >= 1 && words[i - 1] == "of" {
                i - 1
            } else {
                i
            };
            for back in [2, 1] {
                if before >= back
                    && let Some((day, used)) = day_prefix(&words[before - back..before])
                    && used == back
                {
                    return past_date(today, m, day, year_at(&words, i + 1));
                }
            }
        }
        if let Some(day) = weekday(word) {
            let back = (7 + today.weekday().num_days_from_monday() as i64
                - day.num_days_from_monday() as i64)
                % 7;
            let back = if back == 0 { 7 } else { back };
            return today.checked_sub_signed(Duration::days(back));
        }
    }
    None
}

fn currency_word(word: &str) -> Option<&'static str> {
    Some(match word {
        "dollar" | "dollars" | "bucks" | "usd" => "USD",
        "euro" | "euros" | "eur" => "EUR",
        "pound" | "pounds" | "gbp" | "quid" => "GBP",
        _ => return None,
    })
}

/// The money amount in `text`: "$2,000.50", "€300", "500 euros", "two thousand five hundred dollars".
pub fn parse_amount(text: &str) -> Option<Amount> {
    if let Some(c) = SYMBOL_AMOUNT.captures(text) {
        let currency = match &c[1] {
            "$" => "USD",
            "€" => "EUR",
            _ => "GBP",
        };
        return minor_units(&c[2]).map(|minor_units| Amount {
            minor_units,
            currency: Some(currency),
        });
    }
    let words = words(text);
    for (i, word) in words.iter().enumerate() {
        let starts_number = word.chars().next().is_some_and(|c| c.is_ascii_digit())
            || cardinal_prefix(&words[i..=i]).is_some()
            || word == "a";
        if !starts_number || (i > 0 && cardinal_prefix(&words[i - 1..i]).is_some()) {
            continue;
        }
        let (value, used) = if word.contains('.') {
            (0, 1)
        } else if let Some(number) = cardinal_prefix(&words[i..]) {
            number
        } else {
            continue;
        };
        if let Some(currency) = words.get(i + used).and_then(|w| currency_word(w)) {
            let minor_units = if word.contains('.') {
                minor_units(word)?
            } else {
                value.checked_mul(100)?
            };
            return Some(Amount {
                minor_units,
                currency: Some(currency),
            });
        }
    }
    None
}

fn minor_units(number: &str) -> Option<u64> {
    let plain = number.replace(',', "");
    let (whole, fraction) = plain.split_once('.').unwrap_or((&plain, ""));
    let whole: u64 = whole.parse().ok()?;
    let cents: u64 = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<u64>().ok()? * 10,
        2 => fraction.parse().ok()?,
        _ => return None,
    };
    whole.checked_mul(100)?.checked_add(cents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    /// The call takes place on Saturday 28 November 2026.
    fn today() -> NaiveDate {
        day(2026, 11, 28)
    }

    #[test]
    fn dates_absolute_and_relative_to_the_call() {
        let cases = [
            ("on 2026-11-02", Some(day(2026, 11, 2))),
            ("it was 11/20/2026", Some(day(2026, 11, 20))),
            ("it happened yesterday evening", Some(day(2026, 11, 27))),
            ("the day before yesterday", Some(day(2026, 11, 26))),
            ("last Tuesday around noon", Some(day(2026, 11, 24))),
            ("on Saturday", Some(day(2026, 11, 21))),
            ("November 3rd", Some(day(2026, 11, 3))),
            ("on December the", None),
            ("December 24th", Some(day(2025, 12, 24))),
            ("the twenty-third of October 2025", Some(day(2025, 10, 23))),
            ("March twenty first", Some(day(2026, 3, 21))),
            ("three days ago", Some(day(2026, 11, 25))),
            ("this morning around eight", Some(day(2026, 11, 28))),
            ("it happened on the 20th", Some(day(2026, 11, 20))),
            ("on the thirtieth", Some(day(2026, 10, 30))),
            ("a week ago", Some(day(2026, 11, 21))),
            ("about an hour ago", Some(day(2026, 11, 28))),
            ("the third of the month", None),
            ("the two cars", None),
            ("it was last night", Some(day(2026, 11, 27))),
            ("I don't remember", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_date(text, today()), expected, "{text}");
        }
    }

    #[test]
    fn amounts_with_symbols_words_and_currencies() {
        let usd = |minor_units| {
            Some(Amount {
                minor_units,
                currency: Some("USD"),
            })
        };
        assert_eq!(parse_amount("about $2,000.50 in damage"), usd(200_050));
        assert_eq!(
            parse_amount("two thousand five hundred dollars"),
            usd(250_000)
        );
        assert_eq!(parse_amount("a hundred bucks"), usd(10_000));
        assert_eq!(
            parse_amount("it cost 300 euros"),
            Some(Amount {
                minor_units: 30_000,
                currency: Some("EUR")
            })
        );
        assert_eq!(
            parse_amount("€45"),
            Some(Amount {
                minor_units: 4_500,
                currency: Some("EUR")
            })
        );
        assert_eq!(parse_amount("two cars were damaged"), None);
    }

    #[test]
    fn one_turn_can_hold_several_kinds() {
        let found = extract(
            "I'm Ana, policy AB-12345, call me on 415 555 0134 or ana@example.com, it was yesterday and cost $500",
            today(),
            "1",
        );
        assert_eq!(found.phones, ["+14155550134"]);
        assert_eq!(found.emails, ["ana@example.com"]);
        assert_eq!(found.dates, [day(2026, 11, 27)]);
        assert_eq!(
            found.amounts,
            [Amount {
                minor_units: 50_000,
                currency: Some("USD")
            }]
        );
        assert_eq!(found.policy_numbers, ["AB12345"]);
    }
}
