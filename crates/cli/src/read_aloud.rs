//! A scenario's caller line as a caller reads it aloud, for the voice that speaks it in
//! `agent-test --audio`. Piper and espeak-ng read "415 555 0134" as "four hundred fifteen, five hundred
//! fifty-five, zero one thirty-four" and "AU-300451" as "ow, three hundred thousand …", which no caller
//! does: a phone number and a policy number are read digit by digit, letters by name. Only those two
//! forms change; years, street numbers, dates and amounts are read as the voice reads them. The digits
//! go without commas: a comma is a pause in the voice, far longer than a caller's between digit groups.
//! The letters are joined by a hyphen: alone, "A" is read as the article and "AU" as "ow".

/// `line` with its phone numbers ("415 555 0134") and policy numbers ("AU-48213") written the way a
/// caller says them: "4 1 5 5 5 5 0 1 3 4" and "A-U 4 8 2 1 3".
pub(crate) fn as_a_caller_says_it(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        if let Some((groups, tail)) = phone_at(&words[i..]) {
            let said: Vec<String> = groups.iter().map(|g| digits_one_by_one(g)).collect();
            out.push(format!("{}{tail}", said.join(" ")));
            i += 3;
        } else if let Some((letters, digits, tail)) = policy(words[i]) {
            let letters: Vec<String> = letters.chars().map(String::from).collect();
            out.push(format!(
                "{} {}{tail}",
                letters.join("-"),
                digits_one_by_one(digits)
            ));
            i += 1;
        } else {
            out.push(words[i].to_owned());
            i += 1;
        }
    }
    out.join(" ")
}

fn digits_one_by_one(group: &str) -> String {
    group
        .chars()
        .map(String::from)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Punctuation after a word, and the word without it.
fn split_tail(word: &str) -> (&str, &str) {
    let end = word.trim_end_matches([',', '.', '!', '?', ';']).len();
    word.split_at(end)
}

fn all_digits(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_digit())
}

/// Three words "ddd ddd dddd" (the last may carry punctuation): the groups and that punctuation.
fn phone_at<'a>(words: &[&'a str]) -> Option<([&'a str; 3], &'a str)> {
    let [a, b, c, ..] = words else { return None };
    let (c, tail) = split_tail(c);
    (all_digits(a, 3) && all_digits(b, 3) && all_digits(c, 4)).then_some(([a, b, c], tail))
}

/// A word "XX-ddddd" or "XX-dddddd": its letters, digits and trailing punctuation.
fn policy(word: &str) -> Option<(&str, &str, &str)> {
    let (word, tail) = split_tail(word);
    let (letters, digits) = word.split_once('-')?;
    let letters_ok = letters.len() == 2 && letters.bytes().all(|b| b.is_ascii_uppercase());
    let digits_ok = (5..=6).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    (letters_ok && digits_ok).then_some((letters, digits, tail))
}

#[cfg(test)]
mod tests {
    use super::as_a_caller_says_it;

    #[test]
    fn phone_and_policy_numbers_are_read_digit_by_digit_and_the_rest_as_written() {
        assert_eq!(
            as_a_caller_says_it("You can call me back on 415 555 0134."),
            "You can call me back on 4 1 5 5 5 5 0 1 3 4."
        );
        assert_eq!(
            as_a_caller_says_it("My number is 303 555 0110, sorry, I mean 303 555 0119."),
            "My number is 3 0 3 5 5 5 0 1 1 0, sorry, I mean 3 0 3 5 5 5 0 1 1 9."
        );
        assert_eq!(
            as_a_caller_says_it("Hi, this is Tom Baker, policy AU-300451, a tree fell."),
            "Hi, this is Tom Baker, policy A-U 3 0 0 4 5 1, a tree fell."
        );
        assert_eq!(
            as_a_caller_says_it("My policy number is AB-48213."),
            "My policy number is A-B 4 8 2 1 3."
        );
        for unchanged in [
            "It's my 2019 Honda Civic.",
            "At 44 Lake Drive in Madison, on I-90.",
            "It was about 500 dollars, on November 18th.",
            "My number is five oh three, five five five, zero one nine eight.",
        ] {
            assert_eq!(as_a_caller_says_it(unchanged), unchanged);
        }
    }
}
