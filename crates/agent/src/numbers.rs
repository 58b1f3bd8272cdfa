//! Numbers as callers say them and recognisers write them: "four four seven two", "double five",
//! "oh" for zero, "two thousand five hundred", "twenty-first", next to plain digits.

/// The digit a word stands for when numbers are read digit by digit.
pub(crate) fn digit_word(word: &str) -> Option<char> {
    Some(match word {
        "zero" | "oh" | "o" | "nought" => '0',
        "one" => '1',
        "two" => '2',
        "three" => '3',
        "four" => '4',
        "five" => '5',
        "six" => '6',
        "seven" => '7',
        "eight" => '8',
        "nine" => '9',
        _ => return None,
    })
}

/// The number words from "zero" to "nineteen", by value.
pub(crate) const UNITS: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
/// The tens from "twenty" to "ninety".
pub(crate) const TENS: [&str; 8] = [
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// "zero" to "nineteen" and the tens up to "ninety" as numbers.
pub(crate) fn small_number(word: &str) -> Option<u64> {
    if let Some(i) = UNITS.iter().position(|u| *u == word) {
        return Some(i as u64);
    }
    TENS.iter()
        .position(|t| *t == word)
        .map(|i| (i as u64 + 2) * 10)
}

/// Ordinal words and their cardinal: "first" → 1, "twenty-third" is "twenty" + "third".
pub(crate) fn ordinal_word(word: &str) -> Option<u64> {
    Some(match word {
        "first" => 1,
        "second" => 2,
        "third" => 3,
        "fourth" => 4,
        "fifth" => 5,
        "sixth" => 6,
        "seventh" => 7,
        "eighth" => 8,
        "ninth" => 9,
        "tenth" => 10,
        "eleventh" => 11,
        "twelfth" => 12,
        "thirteenth" => 13,
        "fourteenth" => 14,
        "fifteenth" => 15,
        "sixteenth" => 16,
        "seventeenth" => 17,
        "eighteenth" => 18,
        "nineteenth" => 19,
        "twentieth" => 20,
        "thirtieth" => 30,
        _ => return None,
    })
}

/// Lower-case words of `text`, hyphens and punctuation split off ("twenty-one," → "twenty", "one");
/// thousands separators inside numbers kept out of the split ("2,000" is one word, "2000").
pub(crate) fn words(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let text: String = chars
        .iter()
        .enumerate()
        .filter(|&(i, &c)| {
            let between_digits = i > 0
                && chars[i - 1].is_ascii_digit()
                && chars.get(i + 1).is_some_and(char::is_ascii_digit);
            !(c == ',' && between_digits)
        })
        .map(|(_, &c)| c)
        .collect();
    text.split(|c: char| c.is_whitespace() || c == '-' || c == ',')
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '+' && c != '@' && c != '.')
                .trim_end_matches('.')
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// A cardinal number in words at the start of `words` ("two thousand five hundred and ten"): its value
/// and how many words it took. "a hundred" counts; "and" only inside a number.
pub(crate) fn cardinal_prefix(words: &[String]) -> Option<(u64, usize)> {
    let mut total: u64 = 0;
    let mut current: u64 = 0;
    let mut used = 0;
    let mut any = false;
    for (i, word) in words.iter().enumerate() {
        let word = word.as_str();
        if let Some(n) = small_number(word) {
            current += n;
        } else if let Ok(n) = word.replace(',', "").parse::<u64>()
            && !any
        {
            current = n;
        } else if word == "hundred" && (any || current > 0 || (i > 0 && words[i - 1] == "a")) {
            current = current.max(1) * 100;
        } else if let Some(scale) = match word {
            "thousand" => Some(1_000),
            "million" => Some(1_000_000),
            _ => None,
        } && (any || current > 0)
        {
            total += current.max(1) * scale;
            current = 0;
        } else if word == "a"
            && !any
            && words
                .get(i + 1)
                .is_some_and(|w| w == "hundred" || w == "thousand")
        {
            current = 1;
            used = i + 1;
            continue;
        } else if word == "and"
            && any
            && words.get(i + 1).is_some_and(|w| small_number(w).is_some())
        {
            used = i + 1;
            continue;
        } else {
            break;
        }
        any = true;
        used = i + 1;
    }
    any.then_some((total + current, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cardinal(text: &str) -> Option<u64> {
        cardinal_prefix(&words(text)).map(|(n, _)| n)
    }

    #[test]
    fn cardinals_in_words_and_digits() {
        assert_eq!(cardinal("two thousand five hundred dollars"), Some(2_500));
        assert_eq!(cardinal("twenty-one"), Some(21));
        assert_eq!(cardinal("a hundred and fifty"), Some(150));
        assert_eq!(
            cardinal("one million two hundred thousand"),
            Some(1_200_000)
        );
        assert_eq!(cardinal("2,000"), Some(2_000));
        assert_eq!(cardinal("3 thousand"), Some(3_000));
        assert_eq!(cardinal("dollars"), None);
        assert_eq!(
            cardinal_prefix(&words("five hundred euros")),
            Some((500, 2))
        );
    }
}
