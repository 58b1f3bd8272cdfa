//! The case a call fills in: a schema of typed fields (replaceable in config.yaml) and the claim's
//! values. Every value the model proposes through `update_claim` is validated and normalised against its
//! field's type before it is stored ("plus one four one five…" → `+1415…`, "yesterday" → a date), and a
//! value that does not fit is refused with a reason the model can act on.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::entities::{normalize_email, normalize_phone, parse_amount, parse_date};
use crate::facts::parse_policy_number;
use crate::numbers::{cardinal_prefix, words};

mod first_notice;

/// The type of a claim field, and so how its values are checked and normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum FieldKind {
    /// Free text, trimmed.
    Text,
    /// A calendar date, stored as `YYYY-MM-DD`.
    Date,
    /// A date and time, stored as `YYYY-MM-DDTHH:MM:SS`.
    Datetime,
    /// An e-mail address, lower-case.
    Email,
    /// A phone number in E.164.
    Phone,
    /// A number (digits or words; amounts keep their value without the currency).
    Number,
    /// One of fixed values.
    Enum {
        /// The allowed values.
        values: Vec<String>,
    },
    /// Yes or no.
    Bool,
}

/// One field of the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSpec {
    /// Name the model uses (`policy_number`).
    pub name: String,
    /// Type.
    #[serde(flatten)]
    pub kind: FieldKind,
    /// What it is, for the model's prompt.
    pub description: String,
    /// Whether the call should not end without it.
    #[serde(default)]
    pub required: bool,
    /// Which kind of entity the deterministic parsers may fill it from, when its type does not say
    /// (a policy number is text to the schema). Phone, e-mail and date fields are filled from their
    /// entities without this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<EntityKind>,
    /// How the agent asks for it when it speaks from fixed words (small models); default: "Could you
    /// tell me the <description>?".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// How the agent asks again when an answer gave nothing it could use, with an example of what it
    /// wants ("It's on your insurance card and looks like AB-12345."); default: the question again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rephrase: Option<String>,
    /// For a yes/no field: the starts of words that state it in any turn ("hurt", "injur"), so "nobody
    /// was hurt" answers it before it is asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topic: Vec<String>,
}

/// A structured entity the deterministic parsers find in what the caller says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A phone number.
    Phone,
    /// An e-mail address.
    Email,
    /// A calendar date.
    Date,
    /// An amount of money.
    Amount,
    /// An insurance policy number (letters then digits).
    PolicyNumber,
    /// A person's name.
    PersonName,
    /// A place: a street, an address, a building.
    Place,
    /// What happened, in the caller's words.
    Description,
    /// A damaged thing: a vehicle by its make, or property.
    Item,
}

impl FieldSpec {
    /// The entity that fills this field: the declared one, else the one its type implies.
    pub fn entity_kind(&self) -> Option<EntityKind> {
        self.entity.or(match self.kind {
            FieldKind::Phone => Some(EntityKind::Phone),
            FieldKind::Email => Some(EntityKind::Email),
            FieldKind::Date => Some(EntityKind::Date),
            _ => None,
        })
    }

    /// Whether callers answer it letter by letter or digit by digit, or with a name a recogniser
    /// must get letter for letter: a person's name, a policy or phone number, an e-mail address.
    pub fn answered_spelled(&self) -> bool {
        matches!(
            self.entity_kind(),
            Some(
                EntityKind::PersonName
                    | EntityKind::PolicyNumber
                    | EntityKind::Phone
                    | EntityKind::Email
            )
        )
    }
}

/// The fields a call collects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimSchema {
    /// In the order the agent should ask for them.
    pub fields: Vec<FieldSpec>,
}

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// The schema has no such field.
    #[error("there is no claim field {field:?}; the fields are: {known}")]
    UnknownField {
        /// What was asked for.
        field: String,
        /// The schema's field names.
        known: String,
    },
    /// The value does not fit the field's type.
    #[error("{field} must be {expected}; {value:?} is not")]
    Invalid {
        /// The field.
        field: String,
        /// What its type takes.
        expected: String,
        /// What was given.
        value: String,
    },
}

/// What normalisation needs to know about the call.
#[derive(Debug, Clone)]
pub struct FieldContext {
    /// The day of the call, for relative dates.
    pub today: NaiveDate,
    /// E.164 calling code for numbers said without one.
    pub country_code: String,
}

/// The claim's values so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// Normalised values by field name.
    pub values: BTreeMap<String, Value>,
}

impl Claim {
    /// Validates and normalises `raw` for `field`, stores it, and returns the stored value.
    pub fn update(
        &mut self,
        schema: &ClaimSchema,
        field: &str,
        raw: &Value,
        context: &FieldContext,
    ) -> Result<Value, ClaimError> {
        let spec = schema
            .fields
            .iter()
            .find(|f| f.name == field)
            .ok_or_else(|| ClaimError::UnknownField {
                field: field.to_owned(),
                known: schema
                    .fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let value = normalize(spec, raw, context)?;
        self.values.insert(spec.name.clone(), value.clone());
        Ok(value)
    }

    /// Required fields without a value, in schema order.
    pub fn missing<'s>(&self, schema: &'s ClaimSchema) -> Vec<&'s str> {
        schema
            .fields
            .iter()
            .filter(|f| f.required && !self.values.contains_key(&f.name))
            .map(|f| f.name.as_str())
            .collect()
    }
}

fn as_text(raw: &Value) -> String {
    match raw {
        Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    }
}

/// `raw` as `spec`'s type wants it.
pub fn normalize(
    spec: &FieldSpec,
    raw: &Value,
    context: &FieldContext,
) -> Result<Value, ClaimError> {
    let text = as_text(raw);
    let invalid = |expected: &str| ClaimError::Invalid {
        field: spec.name.clone(),
        expected: expected.to_owned(),
        value: text.clone(),
    };
    if text.is_empty() || raw.is_null() {
        return Err(invalid("a non-empty value"));
    }
    Ok(match &spec.kind {
        FieldKind::Text if spec.entity == Some(EntityKind::PolicyNumber) => Value::String(
            parse_policy_number(&text)
                .ok_or_else(|| invalid("a policy number (letters then digits, AB-12345)"))?,
        ),
        FieldKind::Text => {
            crate::facts::check_text(spec.entity, &text).map_err(invalid)?;
            Value::String(text.clone())
        }
        FieldKind::Date => {
            let date = NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .ok()
                .or_else(|| parse_date(&text, context.today))
                .ok_or_else(|| invalid("a date (2026-11-28, \"yesterday\", \"March 3rd\")"))?;
            Value::String(date.format("%Y-%m-%d").to_string())
        }
        FieldKind::Datetime => {
            let parsed = NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S")
                .or_else(|_| NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M"))
                .or_else(|_| NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M"))
                .ok()
                .or_else(|| {
                    let date = parse_date(&text, context.today)?;
                    Some(date.and_time(parse_time(&text).unwrap_or_default()))
                })
                .ok_or_else(|| {
                    invalid("a date and time (2026-11-28T14:30:00, \"yesterday at 3 pm\")")
                })?;
            Value::String(parsed.format("%Y-%m-%dT%H:%M:%S").to_string())
        }
        FieldKind::Email => {
            Value::String(normalize_email(&text).ok_or_else(|| invalid("an e-mail address"))?)
        }
        FieldKind::Phone => Value::String(
            normalize_phone(&text, &context.country_code)
                .ok_or_else(|| invalid("a phone number with 8 to 15 digits"))?,
        ),
        FieldKind::Number => {
            if let Some(n) = raw.as_f64() {
                serde_json::json!(n)
            } else if let Ok(n) = text.replace(',', "").parse::<f64>() {
                serde_json::json!(n)
            } else if let Some(amount) = parse_amount(&text) {
                serde_json::json!(amount.minor_units as f64 / 100.0)
            } else {
                let w = words(&text);
                match cardinal_prefix(&w) {
                    Some((n, used)) if used == w.len() => serde_json::json!(n),
                    _ => return Err(invalid("a number")),
                }
            }
        }
        FieldKind::Enum { values } => {
            let wanted = text.to_lowercase().replace(['-', ' '], "_");
            let found = values
                .iter()
                .find(|v| v.to_lowercase().replace(['-', ' '], "_") == wanted)
                .ok_or_else(|| invalid(&format!("one of {}", values.join(", "))))?;
            Value::String(found.clone())
        }
        FieldKind::Bool => match raw {
            Value::Bool(b) => Value::Bool(*b),
            _ => {
                let lower = text.to_lowercase();
                let first = words(&lower).into_iter().next().unwrap_or_default();
                match first.as_str() {
                    "yes" | "yeah" | "yep" | "true" | "y" | "correct" | "affirmative" => {
                        Value::Bool(true)
                    }
                    "no" | "nope" | "false" | "n" | "none" | "nobody" | "not" => Value::Bool(false),
                    _ => return Err(invalid("yes or no")),
                }
            }
        },
    })
}

/// A clock time in `text`: "14:30", "3 pm", "3:15 p.m.", "noon".
fn parse_time(text: &str) -> Option<NaiveTime> {
    let lower = text.to_lowercase();
    if lower.contains("noon") || lower.contains("midday") {
        return NaiveTime::from_hms_opt(12, 0, 0);
    }
    let w = words(&lower.replace("p.m", "pm").replace("a.m", "am"));
    for (i, word) in w.iter().enumerate() {
        let (clock, suffix) = match word.find(|c: char| c.is_alphabetic()) {
            Some(at) => word.split_at(at),
            None => (word.as_str(), ""),
        };
        let suffix = if suffix.is_empty() {
            w.get(i + 1).map_or("", String::as_str)
        } else {
            suffix
        };
        let (hour, minute) = match clock.split_once(':') {
            Some((h, m)) => (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?),
            None => match clock.parse::<u32>() {
                Ok(h) if matches!(suffix, "am" | "pm") => (h, 0),
                _ => continue,
            },
        };
        let hour = match suffix {
            "pm" if hour < 12 => hour + 12,
            "am" if hour == 12 => 0,
            _ => hour,
        };
        return NaiveTime::from_hms_opt(hour, minute, 0);
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn context() -> FieldContext {
        FieldContext {
            today: NaiveDate::from_ymd_opt(2026, 11, 28).unwrap_or_default(),
            country_code: "1".into(),
        }
    }

    fn spec(kind: FieldKind) -> FieldSpec {
        FieldSpec {
            name: "f".into(),
            kind,
            description: String::new(),
            required: false,
            entity: None,
            question: None,
            rephrase: None,
            topic: Vec::new(),
        }
    }

    fn norm(kind: FieldKind, raw: Value) -> Result<Value, ClaimError> {
        normalize(&spec(kind), &raw, &context())
    }

    #[test]
    fn values_are_normalised_to_their_type() {
        assert_eq!(
            norm(
                FieldKind::Phone,
                json!("plus one four one five five five five zero one three four")
            ),
            Ok(json!("+14155550134"))
        );
        assert_eq!(
            norm(FieldKind::Email, json!("ana dot lopez at example dot com")),
            Ok(json!("ana.lopez@example.com"))
        );
        assert_eq!(
            norm(FieldKind::Date, json!("yesterday")),
            Ok(json!("2026-11-27"))
        );
        assert_eq!(
            norm(FieldKind::Date, json!("2026-11-02")),
            Ok(json!("2026-11-02"))
        );
        assert_eq!(
            norm(FieldKind::Datetime, json!("yesterday at 3 pm")),
            Ok(json!("2026-11-27T15:00:00"))
        );
        assert_eq!(
            norm(FieldKind::Datetime, json!("2026-11-20 09:45")),
            Ok(json!("2026-11-20T09:45:00"))
        );
        assert_eq!(
            norm(FieldKind::Number, json!("two thousand five hundred")),
            Ok(json!(2500))
        );
        assert_eq!(
            norm(FieldKind::Number, json!("$1,200.50")),
            Ok(json!(1200.5))
        );
        assert_eq!(norm(FieldKind::Number, json!(3)), Ok(json!(3.0)));
        assert_eq!(
            norm(FieldKind::Bool, json!("No, nobody was hurt")),
            Ok(json!(false))
        );
        assert_eq!(norm(FieldKind::Bool, json!(true)), Ok(json!(true)));
        let severity = FieldKind::Enum {
            values: vec!["minor".into(), "total-loss".into()],
        };
        assert_eq!(
            norm(severity.clone(), json!("Total loss")),
            Ok(json!("total-loss"))
        );
        assert_eq!(
            norm(FieldKind::Text, json!("  Ana Lopez ")),
            Ok(json!("Ana Lopez"))
        );
    }

    #[test]
    fn values_that_do_not_fit_are_refused_with_a_reason() {
        for (kind, raw) in [
            (FieldKind::Phone, json!("call me maybe")),
            (FieldKind::Email, json!("ana at home")),
            (FieldKind::Date, json!("sometime")),
            (FieldKind::Number, json!("a few")),
            (FieldKind::Bool, json!("perhaps")),
            (
                FieldKind::Enum {
                    values: vec!["minor".into()],
                },
                json!("major"),
            ),
            (FieldKind::Text, json!("   ")),
            (FieldKind::Text, Value::Null),
        ] {
            let error = norm(kind.clone(), raw.clone()).err();
            assert!(
                matches!(error, Some(ClaimError::Invalid { .. })),
                "{kind:?} {raw}: {error:?}"
            );
        }
    }

    #[test]
    fn the_claim_knows_its_fields_and_what_is_missing() {
        let schema = ClaimSchema::default();
        let mut claim = Claim::default();
        assert_eq!(claim.missing(&schema).len(), 7);
        claim
            .update(&schema, "caller_name", &json!("Ana Lopez"), &context())
            .unwrap_or_default();
        claim
            .update(&schema, "injuries", &json!("no"), &context())
            .unwrap_or_default();
        assert_eq!(claim.values["injuries"], json!(false));
        assert!(!claim.missing(&schema).contains(&"caller_name"));
        let error = claim.update(&schema, "favourite_colour", &json!("blue"), &context());
        assert!(
            matches!(&error, Err(ClaimError::UnknownField { known, .. }) if known.contains("policy_number"))
        );
    }

    #[test]
    fn a_schema_is_replaceable_from_yaml_shaped_data() {
        let schema: ClaimSchema = serde_json::from_value(json!({"fields": [
            {"name": "checkin", "type": "date", "description": "Arrival day", "required": true},
            {"name": "room", "type": "enum", "values": ["single", "double"], "description": "Room type"},
        ]}))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            schema.fields[1].kind,
            FieldKind::Enum {
                values: vec!["single".into(), "double".into()]
            }
        );
        assert!(!schema.fields[1].required);
    }
}
