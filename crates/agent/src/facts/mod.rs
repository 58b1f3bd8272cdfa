//! Typed readers of claim facts: every caller turn is read for every field, not only the one just asked
//! about, so a caller who answers out of order, or gives several facts in one breath, loses none of
//! them. Each field kind has its reader (names after their cues, identifiers as recognisers spell them,
//! phone numbers, e-mails said aloud, dates relative to the call, places, yes/no facts with their
//! negation, damaged things, the story) and a validator that refuses a value of the wrong shape,
//! whoever proposes it (a reader, the model, a tool call).

mod identifiers;
mod items;
mod names;
mod places;
mod story;
mod tokens;
mod yes_no;

use chrono::NaiveDate;
use serde_json::{Value, json};

use crate::claim::{Claim, EntityKind, FieldKind, FieldSpec};
use crate::entities::{normalize_email, normalize_phone, parse_amount, parse_date};
pub(crate) use identifiers::letters_only;
pub use identifiers::parse_policy_number;
pub(crate) use places::Detail;
pub use yes_no::yes_or_no;

/// What a turn said about one field.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The field.
    pub field: String,
    /// The value as found (normalised when the claim takes it).
    pub value: Value,
    /// How it relates to what the claim holds.
    pub weight: Weight,
}

/// How a proposal weighs against a value the claim already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Weight {
    /// Mentioned in passing, in general terms ("in a parking lot", a short story): kept, and the agent
    /// still asks for more.
    Partial,
    /// Mentioned in passing: fills an empty field, replaces a partial one.
    Volunteered,
    /// The answer to the question just asked: replaces what was there.
    Answer,
    /// Said as a correction ("sorry, I mean…", "no, it's…"): replaces what was there.
    Correction,
}

/// What the readers need to know about the call.
#[derive(Debug, Clone)]
pub struct TurnContext<'a> {
    /// The day of the call.
    pub today: NaiveDate,
    /// E.164 calling code for numbers said without one.
    pub country_code: &'a str,
    /// The number the caller is calling from, for "call me back on this number".
    pub caller_phone: Option<&'a str>,
    /// The field the agent's last question was about.
    pub asked: Option<&'a str>,
}

/// Words that start a correction: what follows replaces what came before.
const CORRECTIONS: &[&str] = &[
    "sorry, i mean",
    "sorry i mean",
    "i mean",
    "no wait",
    "no, wait",
    "actually",
    "correction",
    "no, it's",
    "no it's",
    "no, it is",
    "that's wrong, it's",
    "sorry,",
];

/// The part of `text` after its last correction cue, when it has one.
fn corrected_part(text: &str) -> Option<&str> {
    let lower = text.to_lowercase();
    CORRECTIONS
        .iter()
        .filter_map(|cue| lower.rfind(cue).map(|at| at + cue.len()))
        .max()
        .map(|at| &text[at..])
        .filter(|rest| !rest.trim().is_empty())
}

/// `text` from its last correction cue on, or all of it.
pub fn after_correction(text: &str) -> &str {
    corrected_part(text).unwrap_or(text)
}

/// Whether a line offers a phone number in passing: a word for calling or a number, a `+`, or (in a
/// line that does not speak of the policy) ten digits or more, a whole number with its area code.
fn says_phone(text: &str) -> bool {
    let lower = text.to_lowercase();
    let cue = [
        "call", "phone", "number", "reach", "mobile", "cell", "contact", "ring", "text me", "plus",
    ]
    .iter()
    .any(|cue| lower.contains(cue));
    let digits = text.chars().filter(char::is_ascii_digit).count();
    cue || text.contains('+') || (digits >= 10 && !lower.contains("policy"))
}

/// Words that mean "the number I am calling from".
fn means_this_number(text: &str) -> bool {
    let lower = text.to_lowercase();
    [
        "this number",
        "this phone",
        "the number i'm calling from",
        "the number i am calling from",
        "same number",
        "number i'm calling on",
    ]
    .iter()
    .any(|cue| lower.contains(cue))
}

/// What `text` says about `field`, read by the field's kind; `asked` says it answers the question.
fn read_field(
    field: &FieldSpec,
    text: &str,
    asked: bool,
    context: &TurnContext<'_>,
) -> Option<(Value, Weight)> {
    let found = |v: String| Some((json!(v), Weight::Volunteered));
    match (field.entity_kind(), &field.kind) {
        (Some(EntityKind::Phone), _) => match normalize_phone(text, context.country_code) {
            // In passing, a run of digits is a phone number only when the line says so ("call me
            // at…", "my number is…"), never in a line about the policy.
            Some(phone) if asked || says_phone(text) => found(phone),
            Some(_) => None,
            None if means_this_number(text) => context.caller_phone.and_then(|p| found(p.into())),
            None => None,
        },
        (Some(EntityKind::Email), _) => normalize_email(text).and_then(found),
        (Some(EntityKind::Date), _) => {
            parse_date(text, context.today).and_then(|d| found(d.format("%Y-%m-%d").to_string()))
        }
        (Some(EntityKind::Amount), _) => {
            parse_amount(text).map(|a| (json!(a.minor_units as f64 / 100.0), Weight::Volunteered))
        }
        (Some(EntityKind::PolicyNumber), _) => identifiers::read(text, !asked).and_then(found),
        (Some(EntityKind::PersonName), _) => names::read(text, asked).and_then(found),
        (Some(EntityKind::Place), _) => places::read(text, asked).map(|(place, detail)| {
            let weight = match detail {
                Detail::General => Weight::Partial,
                Detail::Named => Weight::Volunteered,
            };
            (json!(place), weight)
        }),
        (Some(EntityKind::Item), _) => items::read(text, asked).and_then(found),
        (Some(EntityKind::Description), _) => story::read(text, asked).map(|story| {
            // A story told in passing in a few words is worth a question for more.
            let weight = if asked || story::words(&story) >= 12 {
                Weight::Volunteered
            } else {
                Weight::Partial
            };
            (json!(story), weight)
        }),
        (None, FieldKind::Bool) => {
            let topic = yes_no::read_topic(text, &field.topic);
            let plain = if asked { yes_or_no(text) } else { None };
            // "Yes, the cyclist broke his wrist": the topic's reading wins over a leading yes/no.
            topic
                .or(plain)
                .map(|b| (Value::Bool(b), Weight::Volunteered))
        }
        (None, FieldKind::Enum { values }) => {
            let lower = text.to_lowercase();
            values
                .iter()
                .find(|v| lower.contains(&v.to_lowercase().replace(['_', '-'], " ")))
                .and_then(|v| found(v.clone()))
        }
        (None, FieldKind::Text | FieldKind::Number | FieldKind::Datetime) if asked => {
            let answer = tokens::tokens(text);
            let answer = tokens::without_lead_ins(&answer);
            (!answer.is_empty()).then(|| (json!(tokens::join(answer)), Weight::Volunteered))
        }
        _ => None,
    }
}

/// What `text` says about each field of `fields`. A field read from the part after a correction cue is
/// a correction; the field just asked about is an answer.
pub fn read_turn(fields: &[FieldSpec], text: &str, context: &TurnContext<'_>) -> Vec<Proposal> {
    let tail = corrected_part(text);
    // A turn that says a typed fact (a number, an e-mail, a date, an identifier) for another field than
    // the one asked has not answered the question in free words: "323 555 0186" said when asked what
    // was damaged is a phone number, not the damaged thing.
    let typed_elsewhere = fields.iter().any(|f| {
        context.asked != Some(f.name.as_str())
            && matches!(
                f.entity_kind(),
                Some(EntityKind::Phone | EntityKind::Email | EntityKind::PolicyNumber)
            )
            && read_field(f, text, false, context).is_some()
    });
    let mut out = Vec::new();
    for field in fields {
        let free_text =
            matches!(field.kind, FieldKind::Text) && field.entity != Some(EntityKind::PolicyNumber);
        let asked = context.asked == Some(field.name.as_str()) && !(free_text && typed_elsewhere);
        let corrected = tail.and_then(|tail| read_field(field, tail, asked, context));
        let (value, weight) = match corrected {
            Some((value, _)) => (value, Weight::Correction),
            None => match read_field(field, text, asked, context) {
                Some((value, weight)) if asked && weight != Weight::Partial => {
                    (value, Weight::Answer)
                }
                Some(found) => found,
                None => continue,
            },
        };
        out.push(Proposal {
            field: field.name.clone(),
            value,
            weight,
        });
    }
    out
}

/// The yes/no fact a line states about `field`'s topic in passing ("nobody was hurt"), if any.
pub(crate) fn states(field: &FieldSpec, text: &str) -> Option<bool> {
    yes_no::read_topic(text, &field.topic)
}

/// Whether a proposal of `weight` for `field` should change what `claim` holds. `partial` lists the
/// fields whose value is only partial so far.
pub fn takes(claim: &Claim, field: &str, weight: Weight, partial: bool) -> bool {
    match claim.values.get(field) {
        None => true,
        Some(_) => weight >= Weight::Answer || (partial && weight >= Weight::Volunteered),
    }
}

/// Checks a text value against the shape its field's entity kind wants; `Err` says what it should be.
pub(crate) fn check_text(kind: Option<EntityKind>, value: &str) -> Result<(), &'static str> {
    let ok = match kind {
        Some(EntityKind::PersonName) => names::valid(value),
        Some(EntityKind::Place) => places::valid(value),
        Some(EntityKind::Item) => items::valid(value),
        Some(EntityKind::Description) => story::valid(value),
        _ => return Ok(()),
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        Some(EntityKind::PersonName) => "a person's name (one to four words, no verbs or digits)",
        Some(EntityKind::Place) => {
            "a place (a street, an address, a building), not a time or an e-mail"
        }
        Some(EntityKind::Item) => "what was damaged, in a few words",
        _ => "a description of two words or more",
    })
}

/// How the agent says a stored value back to the caller.
pub fn spoken(field: &FieldSpec, value: &Value) -> String {
    let text = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned);
    match field.entity_kind() {
        Some(EntityKind::PolicyNumber) => identifiers::spoken(&text),
        Some(EntityKind::Phone) => spoken_phone(&text),
        Some(EntityKind::Email) => text.replace('.', " dot ").replace('@', " at "),
        Some(EntityKind::Date) => NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .map(|d| {
                format!(
                    "{} {}",
                    d.format("%A, %B"),
                    ordinal(d.format("%-d").to_string())
                )
            })
            .unwrap_or(text),
        Some(EntityKind::Place) => places::spoken(&text),
        _ => text,
    }
}

fn ordinal(day: String) -> String {
    let n: u32 = day.parse().unwrap_or(0);
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// An E.164 number as said back: digit by digit in the national groups (+1 415 555 0134 → "4 1 5, 5 5 5,
/// 0 1 3 4"); other countries' numbers with their code first.
fn spoken_phone(e164: &str) -> String {
    let digits: Vec<char> = e164.chars().filter(char::is_ascii_digit).collect();
    let say = |d: &[char]| d.iter().map(char::to_string).collect::<Vec<_>>().join(" ");
    if digits.len() == 11 && digits[0] == '1' {
        return format!(
            "{}, {}, {}",
            say(&digits[1..4]),
            say(&digits[4..7]),
            say(&digits[7..])
        );
    }
    let groups: Vec<String> = digits.chunks(3).map(say).collect();
    format!("plus {}", groups.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claim::ClaimSchema;

    fn context(asked: Option<&str>) -> TurnContext<'_> {
        TurnContext {
            today: NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(),
            country_code: "1",
            caller_phone: Some("+14155550100"),
            asked,
        }
    }

    fn read(text: &str, asked: Option<&str>) -> Vec<(String, Value, Weight)> {
        read_turn(&ClaimSchema::default().fields, text, &context(asked))
            .into_iter()
            .map(|p| (p.field, p.value, p.weight))
            .collect()
    }

    #[test]
    fn every_field_is_read_from_every_turn() {
        let found = read(
            "Hi, this is Tom Baker, policy AU-300451, a tree fell on my car this morning.",
            None,
        );
        let fields: Vec<&str> = found.iter().map(|(f, _, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "caller_name",
                "policy_number",
                "incident_date",
                "incident_description"
            ]
        );
        // Asked when, told where and when: both land.
        let found = read(
            "It was on Main Street, this morning around eight.",
            Some("incident_date"),
        );
        assert!(found.contains(&("incident_date".into(), json!("2026-11-28"), Weight::Answer)));
        assert!(found.contains(&(
            "incident_location".into(),
            json!("Main Street"),
            Weight::Volunteered
        )));
        // Nobody was hurt, said in passing.
        let found = read(
            "It was on Main Street and nobody was hurt.",
            Some("incident_date"),
        );
        assert!(found.contains(&("injuries".into(), json!(false), Weight::Volunteered)));
        // A policy number heard as digits is not a phone number.
        let found = read("Policy 0800 19,045", Some("policy_number"));
        assert!(
            !found.iter().any(|(f, _, _)| f == "callback_phone"),
            "{found:?}"
        );
        let found = read("My phone was stolen, call me back at 617 555 0190.", None);
        assert!(
            found.iter().any(|(f, _, _)| f == "callback_phone"),
            "{found:?}"
        );
    }

    #[test]
    fn wrong_things_do_not_land_in_fields() {
        // The story in answer to the name question is not a name.
        let found = read(
            "Someone rear-ended me at a red light on Elm Street.",
            Some("caller_name"),
        );
        assert!(
            !found.iter().any(|(f, _, _)| f == "caller_name"),
            "{found:?}"
        );
        // An e-mail's domain is not a place.
        let found = read("It's ana dot lopez at example dot com.", Some("email"));
        assert!(
            !found.iter().any(|(f, _, _)| f == "incident_location"),
            "{found:?}"
        );
        assert!(found.contains(&(
            "email".into(),
            json!("ana.lopez@example.com"),
            Weight::Answer
        )));
    }

    #[test]
    fn a_correction_replaces_what_came_before_it() {
        let found = read(
            "My number is 303 555 0110, sorry, I mean 303 555 0119.",
            Some("callback_phone"),
        );
        assert_eq!(
            found,
            [(
                "callback_phone".into(),
                json!("+13035550119"),
                Weight::Correction
            )]
        );
        let found = read("Call me back on this number.", Some("callback_phone"));
        assert_eq!(found[0].1, json!("+14155550100"));
    }

    #[test]
    fn values_are_said_back_as_a_person_would() {
        let schema = ClaimSchema::default();
        let field = |name: &str| {
            schema
                .fields
                .iter()
                .find(|f| f.name == name)
                .unwrap()
                .clone()
        };
        assert_eq!(
            spoken(&field("callback_phone"), &json!("+14155550134")),
            "4 1 5, 5 5 5, 0 1 3 4"
        );
        assert_eq!(
            spoken(&field("incident_date"), &json!("2026-11-24")),
            "Tuesday, November 24th"
        );
        assert_eq!(
            spoken(&field("email"), &json!("ana.lopez@example.com")),
            "ana dot lopez at example dot com"
        );
        assert_eq!(
            spoken(&field("policy_number"), &json!("AB48213")),
            "A, B, 4 8 2, 1 3"
        );
    }
}
