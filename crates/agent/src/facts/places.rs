//! Where something happened: a phrase opened by a place preposition ("on Main Street in Springfield",
//! "at the corner of 5th Avenue and Pine Street", "at my home, 12 Oak Avenue") that names a place (a
//! street, a building, a numbered address, a proper name). Times ("at 3 pm", "on Monday"), things ("on
//! my car") and e-mail domains ("at example dot com") are not places.

use super::tokens::{LEAD_INS, Stop, Token, join, tokens};

/// Words that open a place phrase.
const OPENERS: &[&str] = &[
    "on", "at", "in", "near", "outside", "inside", "by", "behind", "opposite", "off", "along",
    "across", "past", "beside", "between", "around",
];

/// Nouns that make a phrase a place.
const PLACE_NOUNS: &[&str] = &[
    "street",
    "st",
    "avenue",
    "ave",
    "road",
    "rd",
    "lane",
    "drive",
    "boulevard",
    "blvd",
    "highway",
    "freeway",
    "motorway",
    "interstate",
    "expressway",
    "route",
    "parkway",
    "way",
    "court",
    "place",
    "square",
    "terrace",
    "crescent",
    "circle",
    "bridge",
    "tunnel",
    "corner",
    "intersection",
    "junction",
    "crossing",
    "roundabout",
    "exit",
    "lot",
    "garage",
    "driveway",
    "parking",
    "mall",
    "station",
    "airport",
    "store",
    "supermarket",
    "market",
    "shop",
    "school",
    "library",
    "hospital",
    "park",
    "home",
    "house",
    "apartment",
    "flat",
    "building",
    "office",
    "center",
    "centre",
    "plaza",
    "church",
    "hotel",
    "restaurant",
    "gym",
    "stadium",
    "campus",
    "warehouse",
    "farm",
    "yard",
    "backyard",
    "garden",
    "basement",
    "town",
    "city",
    "downtown",
    "village",
    "neighborhood",
    "neighbourhood",
    "block",
    "sidewalk",
    "pavement",
    "crosswalk",
    "motel",
    "cafe",
    "bar",
    "bank",
    "port",
    "harbor",
    "harbour",
    "beach",
    "pier",
    "marina",
    "lake",
    "river",
];

/// Words after which a place phrase is over: a new clause, or the time it happened.
const ENDS: &[&str] = &[
    "when",
    "while",
    "because",
    "but",
    "so",
    "as",
    "which",
    "who",
    "that",
    "where",
    "if",
    "after",
    "before",
    "until",
    "yesterday",
    "today",
    "tonight",
    "this",
    "last",
    "around",
    "about",
    "and",
    "then",
    "during",
    "with",
    "while",
];

/// Words that say a time, not a place (beside the names of days and months).
const TIME_WORDS: &[&str] = &[
    "morning",
    "afternoon",
    "evening",
    "night",
    "noon",
    "midnight",
    "time",
    "moment",
    "am",
    "pm",
    "weekend",
    "storm",
    "rain",
    "dark",
    "end",
    "middle",
    "past",
    "minute",
    "minutes",
    "hour",
    "hours",
    "o'clock",
    "oclock",
];

/// Words that are not a proper name even when written with a capital.
const NOT_PROPER: &[&str] = &[
    "i", "i'm", "the", "a", "an", "my", "our", "your", "it", "it's",
];

/// How specific a place phrase is: a street or address with a name beats a bare "a parking lot".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Detail {
    /// A kind of place only ("a parking lot", "my garage").
    General,
    /// A named or numbered place ("Main Street", "12 Oak Avenue", "the Westfield mall").
    Named,
}

fn is_place_noun(token: &Token) -> bool {
    PLACE_NOUNS.contains(&token.lower.as_str())
}

fn is_time(token: &Token) -> bool {
    TIME_WORDS.contains(&token.lower.as_str())
        || crate::entities::is_calendar_word(&token.lower)
        || token.lower.ends_with("am") && token.has_digit()
        || token.lower.ends_with("pm") && token.has_digit()
}

/// Whether the words name a place, and how specifically.
fn detail(words: &[Token]) -> Option<Detail> {
    if words.is_empty()
        || words
            .iter()
            .any(|t| t.raw.contains('@') || t.lower == "dot" || t.lower.ends_with(".com"))
    {
        return None;
    }
    let head = words
        .iter()
        .find(|t| !NOT_PROPER.contains(&t.lower.as_str()))?;
    if is_time(head) || (head.has_digit() && words.len() == 1) {
        return None;
    }
    if words.iter().take(3).any(is_time) && !words.iter().any(is_place_noun) {
        return None;
    }
    let noun = words.iter().any(is_place_noun);
    let named = words.iter().enumerate().any(|(i, t)| {
        (t.capitalised() && !NOT_PROPER.contains(&t.lower.as_str()))
            || (t.has_digit()
                && words
                    .get(i + 1)
                    .is_some_and(|n| n.capitalised() || is_place_noun(n)))
            || (t.has_digit() && i > 0 && is_place_noun(&words[i - 1]))
    });
    match (noun, named) {
        (_, true) if noun || words.len() <= 6 => Some(Detail::Named),
        (true, false) => Some(Detail::General),
        _ => None,
    }
}

/// The words of a place phrase starting at `tokens[0]` (after its opener).
fn phrase(tokens: &[Token]) -> &[Token] {
    let mut end = 0;
    while end < tokens.len() && end < 16 {
        let token = &tokens[end];
        if ENDS.contains(&token.lower.as_str()) {
            // "the corner of 5th Avenue and Pine Street": "and" goes on into a second street name.
            let continues = token.lower == "and"
                && tokens
                    .get(end + 1)
                    .is_some_and(|n| n.capitalised() || n.has_digit());
            if !continues {
                break;
            }
        }
        if is_time(token) && end > 0 {
            break;
        }
        end += 1;
        match token.stop {
            Stop::Sentence => break,
            // "Elm Road, Austin": a comma goes on into a name or a number, not into a new clause.
            Stop::Comma => {
                let goes_on = tokens.get(end).is_some_and(|n| {
                    (n.capitalised() && !NOT_PROPER.contains(&n.lower.as_str())) || n.has_digit()
                });
                if !goes_on {
                    break;
                }
            }
            Stop::None => {}
        }
    }
    &tokens[..end]
}

/// The most specific place in `text` and how specific it is. `asked`: the agent just asked where, so a
/// bare answer ("Main Street, Springfield.") is a place too.
pub(crate) fn read(text: &str, asked: bool) -> Option<(String, Detail)> {
    let tokens = tokens(text);
    let mut best: Option<(String, Detail)> = None;
    let consider = |best: &mut Option<(String, Detail)>, words: &[Token]| {
        let words = trim(words);
        if let Some(d) = detail(words)
            && best.as_ref().is_none_or(|(_, b)| d > *b)
        {
            *best = Some((join(words), d));
        }
    };
    let mut i = 0;
    while i < tokens.len() {
        let opener = OPENERS.contains(&tokens[i].lower.as_str())
            || (tokens[i].lower == "next" && tokens.get(i + 1).is_some_and(|t| t.lower == "to"));
        if opener && tokens[i].stop == Stop::None {
            let skip = if tokens[i].lower == "next" { 2 } else { 1 };
            let words = phrase(&tokens[i + skip..]);
            // Following openers ("in my driveway at 8 Elm Road") are part of the same phrase.
            consider(&mut best, words);
            i += skip + words.len().max(1);
            continue;
        }
        i += 1;
    }
    if asked {
        // The whole answer, when it holds the place found in it and more ("A main street in
        // Springfield", a recogniser's "a" for "on").
        let start = tokens
            .iter()
            .position(|t| {
                !LEAD_INS.contains(&t.lower.as_str())
                    && !OPENERS.contains(&t.lower.as_str())
                    && t.lower != "happened"
            })
            .unwrap_or(tokens.len());
        let mut answer = None;
        consider(&mut answer, phrase(&tokens[start..]));
        if let Some((text, detail)) = answer
            && best
                .as_ref()
                .is_none_or(|(found, d)| detail >= *d && text.contains(found.as_str()))
        {
            best = Some((text, detail));
        }
    }
    best
}

/// A phrase without a trailing opener or article.
fn trim(words: &[Token]) -> &[Token] {
    let mut end = words.len();
    while end > 0
        && (OPENERS.contains(&words[end - 1].lower.as_str())
            || NOT_PROPER.contains(&words[end - 1].lower.as_str())
            || words[end - 1].lower == "of")
    {
        end -= 1;
    }
    &words[..end]
}

/// Whether `value` can be a place: not an e-mail or a domain, not a time, not a story.
pub(crate) fn valid(value: &str) -> bool {
    let words = tokens(value);
    (1..=16).contains(&words.len()) && detail(trim(&words)).is_some() || {
        // A short value written as a name ("Springfield", "Broadway").
        words.len() <= 4
            && !words.is_empty()
            && words.iter().all(|t| t.capitalised() || t.has_digit())
            && !words.iter().any(is_time)
            && !value.contains('@')
    }
}

/// The place as the agent says it back: the caller's "my" becomes "your".
pub(crate) fn spoken(value: &str) -> String {
    value
        .split(' ')
        .map(|w| match w {
            "my" => "your",
            "My" => "Your",
            "our" => "your",
            "Our" => "Your",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(text: &str, asked: bool) -> Option<String> {
        read(text, asked).map(|(p, _)| p)
    }

    #[test]
    fn places_after_their_prepositions() {
        for (text, expected) in [
            (
                "On Main Street in Springfield.",
                Some("Main Street in Springfield"),
            ),
            (
                "At the corner of 5th Avenue and Pine Street in Seattle.",
                Some("the corner of 5th Avenue and Pine Street in Seattle"),
            ),
            (
                "At my house, 12 Oak Avenue, Portland.",
                Some("my house, 12 Oak Avenue, Portland"),
            ),
            (
                "It was in my driveway at 8 Elm Road, Austin.",
                Some("my driveway at 8 Elm Road, Austin"),
            ),
            (
                "In the parking lot of the Westfield mall in San Jose.",
                Some("the parking lot of the Westfield mall in San Jose"),
            ),
            (
                "On Highway 101 near Palo Alto.",
                Some("Highway 101 near Palo Alto"),
            ),
            (
                "Outside the train station in Cambridge.",
                Some("the train station in Cambridge"),
            ),
            (
                "On Broadway near the library in Boulder.",
                Some("Broadway near the library in Boulder"),
            ),
            (
                "It happened yesterday on Main Street when a van hit me.",
                Some("Main Street"),
            ),
            (
                "Someone scraped my car in a parking lot.",
                Some("a parking lot"),
            ),
            ("A tree fell on my car this morning.", None),
            ("It's ana dot lopez at example dot com.", None),
            ("It was at 3 pm on Monday.", None),
            ("A branch fell on the roof in the storm.", None),
            ("I was at home at the time.", Some("home")),
            ("I'm at work right now.", None),
        ] {
            assert_eq!(place(text, false).as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn a_bare_answer_to_where_is_a_place() {
        assert_eq!(
            place("Main Street, Springfield.", true).as_deref(),
            Some("Main Street, Springfield")
        );
        assert_eq!(
            place("The Westfield mall.", true).as_deref(),
            Some("The Westfield mall")
        );
        assert_eq!(place("Main Street, Springfield.", false), None);
        assert_eq!(place("Yesterday.", true), None);
        assert_eq!(
            place("A main street in Springfield.", true).as_deref(),
            Some("A main street in Springfield")
        );
        assert_eq!(
            place("On Main Street in Springfield.", true).as_deref(),
            Some("Main Street in Springfield")
        );
    }

    #[test]
    fn a_named_place_is_more_specific_than_a_kind_of_place() {
        assert_eq!(
            read("in a parking lot", false).map(|(_, d)| d),
            Some(Detail::General)
        );
        assert_eq!(
            read("on Main Street", false).map(|(_, d)| d),
            Some(Detail::Named)
        );
        assert!(valid("Main Street in Springfield"));
        assert!(valid("Springfield"));
        assert!(!valid("example dot com"));
        assert!(!valid("3 pm"));
        assert!(!valid("a@b.com"));
    }
}
