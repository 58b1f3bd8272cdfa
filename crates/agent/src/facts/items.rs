//! What was damaged: a vehicle named by its make ("my 2019 Honda Civic", "a red Trek road bike") in any
//! turn, or anything the caller names in answer to the question ("The kitchen floor and the cabinets.").

use super::tokens::{Stop, Token, join, tokens, without_lead_ins};

/// Makes of cars, motorbikes and bicycles, lower case.
const MAKES: &[&str] = &[
    "honda",
    "toyota",
    "ford",
    "tesla",
    "volkswagen",
    "vw",
    "subaru",
    "bmw",
    "mercedes",
    "audi",
    "nissan",
    "chevrolet",
    "chevy",
    "hyundai",
    "kia",
    "mazda",
    "jeep",
    "dodge",
    "gmc",
    "volvo",
    "lexus",
    "acura",
    "porsche",
    "fiat",
    "peugeot",
    "renault",
    "skoda",
    "opel",
    "mini",
    "mitsubishi",
    "buick",
    "cadillac",
    "chrysler",
    "lincoln",
    "infiniti",
    "genesis",
    "jaguar",
    "land",
    "rover",
    "citroen",
    "seat",
    "suzuki",
    "yamaha",
    "kawasaki",
    "ducati",
    "harley",
    "trek",
    "specialized",
    "cannondale",
    "giant",
    "rivian",
    "polestar",
    "alfa",
    "saab",
    "dacia",
    "lucid",
];

/// Words that may stand before a make: colours, determiners, a model year.
fn before_make(token: &Token) -> bool {
    const COLOURS: &[&str] = &[
        "red", "blue", "green", "black", "white", "grey", "gray", "silver", "yellow", "orange",
        "brown", "gold", "beige", "purple", "dark", "light", "navy", "maroon",
    ];
    COLOURS.contains(&token.lower.as_str())
        || (token.raw.len() == 4
            && token.raw.chars().all(|c| c.is_ascii_digit())
            && token.raw.starts_with(['1', '2']))
}

/// A vehicle named by its make in `text`: "[colour] [year] Make Model…", up to the end of the clause.
fn vehicle(tokens: &[Token]) -> Option<String> {
    // "Lincoln Avenue", "on Ford Street": a make that names a street is a place.
    let at = tokens.iter().enumerate().position(|(i, t)| {
        let street = tokens.get(i + 1).is_some_and(|n| {
            [
                "street",
                "st",
                "avenue",
                "ave",
                "lane",
                "drive",
                "boulevard",
                "way",
                "square",
            ]
            .contains(&n.lower.as_str())
        }) || i.checked_sub(1).is_some_and(|p| {
            ["on", "at", "in", "near", "off", "along"].contains(&tokens[p].lower.as_str())
        });
        MAKES.contains(&t.lower.as_str()) && t.capitalised() && !street
    })?;
    let mut start = at;
    while start > 0 && before_make(&tokens[start - 1]) {
        start -= 1;
    }
    let mut end = at + 1;
    // The model: capitalised or alphanumeric words ("Civic", "RAV4", "Model 3"), and a few nouns.
    while end < tokens.len() && end - at <= 3 && tokens[end - 1].stop == Stop::None {
        let t = &tokens[end];
        let model = t.capitalised()
            || t.has_digit()
            || [
                "road",
                "mountain",
                "bike",
                "bicycle",
                "truck",
                "van",
                "pickup",
                "suv",
                "motorbike",
            ]
            .contains(&t.lower.as_str());
        if !model || ["I", "It", "The"].contains(&t.raw.as_str()) {
            break;
        }
        end += 1;
    }
    Some(join(&tokens[start..end]))
}

/// The damaged vehicle or property in `text`. `asked`: the agent asked for it, so the answer is it.
pub(crate) fn read(text: &str, asked: bool) -> Option<String> {
    let tokens = tokens(text);
    if let Some(found) = vehicle(&tokens) {
        return Some(found);
    }
    if !asked {
        return None;
    }
    let rest = without_lead_ins(&tokens);
    let sentence_end = rest
        .iter()
        .position(|t| t.stop == Stop::Sentence)
        .map_or(rest.len(), |i| i + 1);
    let answer = &rest[..sentence_end];
    valid_words(answer).then(|| join(answer))
}

fn valid_words(words: &[Token]) -> bool {
    (1..=12).contains(&words.len())
        && !words.iter().any(|t| t.raw.contains('@') || t.lower == "dot")
        // Something named in words: not a number, not only lead-ins.
        && words.iter().any(|t| {
            t.raw.chars().filter(|c| c.is_alphabetic()).count() >= 2
                && !super::tokens::LEAD_INS.contains(&t.lower.as_str())
        })
}

/// Whether `value` can name a damaged thing: a few words, not an e-mail.
pub(crate) fn valid(value: &str) -> bool {
    valid_words(&tokens(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vehicles_by_their_make_in_any_turn() {
        for (text, expected) in [
            ("It's my 2019 Honda Civic.", Some("2019 Honda Civic")),
            ("A blue 2021 Toyota RAV4.", Some("blue 2021 Toyota RAV4")),
            ("A red Trek road bike.", Some("red Trek road bike")),
            (
                "I was driving my Tesla Model 3 when it happened",
                Some("Tesla Model 3"),
            ),
            ("My Volkswagen Golf.", Some("Volkswagen Golf")),
            ("My 2018 Mazda 3.", Some("2018 Mazda 3")),
            ("I ford the river every day", None),
            ("Someone hit my car.", None),
        ] {
            assert_eq!(read(text, false).as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn the_answer_to_the_question_names_the_property() {
        assert_eq!(
            read("The kitchen floor and the cabinets.", true).as_deref(),
            Some("The kitchen floor and the cabinets")
        );
        assert_eq!(
            read("The roof of my house.", true).as_deref(),
            Some("The roof of my house")
        );
        assert_eq!(read("Yes.", true), None);
        assert!(!valid("ana@example.com"));
        assert!(!valid("323 555 0186"));
        assert_eq!(read("It was on Lincoln Avenue in Denver.", false), None);
    }
}
