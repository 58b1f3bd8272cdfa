//! Word error rate with the usual normalisation: case, punctuation and number formats do not count as
//! errors ("Press 1." and "press one" are the same words).

/// Lower-cased words with punctuation removed and numbers spelled out.
pub fn normalize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in text.split(|c: char| c.is_whitespace() || c == '-' || c == '/') {
        let word: String = raw
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '\'')
            .flat_map(char::to_lowercase)
            .collect();
        let word = word.trim_matches('\'').to_owned();
        if word.is_empty() {
            continue;
        }
        match word.parse::<u64>() {
            Ok(n) if word.len() <= 4 => out.extend(spell(n).split(' ').map(str::to_owned)),
            // Long digit strings (phone, policy numbers) are read digit by digit.
            Ok(_) => out.extend(
                word.chars()
                    .map(|d| spell(u64::from(d.to_digit(10).unwrap_or(0)))),
            ),
            Err(_) => out.push(word),
        }
    }
    out
}

const ONES: [&str; 20] = [
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
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// English words for 0–9999.
fn spell(n: u64) -> String {
    match n {
        0..=19 => ONES[n as usize].to_owned(),
        20..=99 => {
            let (t, o) = (n / 10, n % 10);
            if o == 0 {
                TENS[t as usize].to_owned()
            } else {
                format!("{} {}", TENS[t as usize], ONES[o as usize])
            }
        }
        100..=999 => {
            let (h, rest) = (n / 100, n % 100);
            if rest == 0 {
                format!("{} hundred", ONES[h as usize])
            } else {
                format!("{} hundred {}", ONES[h as usize], spell(rest))
            }
        }
        _ => {
            let (th, rest) = (n / 1000, n % 1000);
            if rest == 0 {
                format!("{} thousand", spell(th))
            } else {
                format!("{} thousand {}", spell(th), spell(rest))
            }
        }
    }
}

/// Word-level edit distance (substitutions, insertions, deletions).
pub fn word_errors(reference: &[String], hypothesis: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut cur = Vec::with_capacity(hypothesis.len() + 1);
        cur.push(i + 1);
        for (j, h) in hypothesis.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(r != h))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[hypothesis.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_is_not_an_error() {
        assert_eq!(normalize("Press 1, then #."), normalize("press one then"));
        assert_eq!(
            normalize("It's 4472"),
            vec![
                "it's", "four", "thousand", "four", "hundred", "seventy", "two"
            ]
        );
        assert_eq!(
            normalize("call 5550100"),
            vec![
                "call", "five", "five", "five", "zero", "one", "zero", "zero"
            ]
        );
        assert_eq!(normalize("twenty-one"), vec!["twenty", "one"]);
        assert_eq!(normalize("21"), vec!["twenty", "one"]);
    }

    #[test]
    fn edit_distance_counts_each_kind_of_error() {
        let r = normalize("the cat sat");
        assert_eq!(word_errors(&r, &normalize("the cat sat")), 0);
        assert_eq!(word_errors(&r, &normalize("the bat sat")), 1);
        assert_eq!(word_errors(&r, &normalize("the cat")), 1);
        assert_eq!(word_errors(&r, &normalize("the fat cat sat")), 1);
        assert_eq!(word_errors(&r, &[]), 3);
    }
}
