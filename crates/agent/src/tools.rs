//! The tools the agent may use during a call, their argument schemas, and the check that turns a model's
//! tool call into an [`Action`] before anything happens. A call with missing or ill-typed arguments is
//! refused with a reason that goes back to the model, never acted on.

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_llm::ToolSpec;

use crate::claim::ClaimSchema;
use crate::entities::parse_date;

/// Languages the agent can switch to (ISO 639-1).
pub const LANGUAGES: &[&str] = &["en", "es", "fr", "de", "it", "pt", "nl", "ja"];

/// A validated tool call, ready to act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "tool")]
pub enum Action {
    /// Set one claim field (validated again against its type when applied).
    UpdateClaim {
        /// Field name.
        field: String,
        /// The value as said.
        value: Value,
    },
    /// Remember to do something.
    CreateReminder {
        /// What.
        title: String,
        /// When, `YYYY-MM-DDTHH:MM:SS`.
        due: String,
        /// Who (a team or person).
        owner: String,
    },
    /// Look something up in the company's documents.
    SearchDocuments {
        /// What to look for.
        query: String,
    },
    /// Hand the caller to a person.
    TransferToHuman {
        /// Why.
        reason: String,
    },
    /// Hang up.
    EndCall {
        /// Why.
        reason: String,
    },
    /// Text the caller.
    SendSms {
        /// The message.
        text: String,
    },
    /// Speak another language from now on (STT, TTS and the model together).
    SwitchLanguage {
        /// ISO 639-1 code.
        language: String,
    },
}

impl Action {
    /// The tool's name.
    pub fn tool_name(&self) -> &'static str {
        match self {
            Action::UpdateClaim { .. } => "update_claim",
            Action::CreateReminder { .. } => "create_reminder",
            Action::SearchDocuments { .. } => "search_documents",
            Action::TransferToHuman { .. } => "transfer_to_human",
            Action::EndCall { .. } => "end_call",
            Action::SendSms { .. } => "send_sms",
            Action::SwitchLanguage { .. } => "switch_language",
        }
    }
}

/// The tool definitions the model is offered, with `update_claim`'s field names from `schema`.
pub fn tool_specs(schema: &ClaimSchema) -> Vec<ToolSpec> {
    let fields: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
    let text = |max: u32| json!({"type": "string", "maxLength": max});
    let spec = |name: &str, description: &str, properties: Value, required: &[&str]| ToolSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        parameters: json!({"type": "object", "properties": properties, "required": required}),
    };
    vec![
        spec(
            "update_claim",
            "Record one fact the caller gave for the claim.",
            json!({"field": {"type": "string", "enum": fields}, "value": text(200)}),
            &["field", "value"],
        ),
        spec(
            "create_reminder",
            "Schedule a follow-up task.",
            json!({"title": text(120), "due": text(40), "owner": text(60)}),
            &["title", "due", "owner"],
        ),
        spec(
            "search_documents",
            "Look up the company's documents (policies, coverage, procedures) to answer a question.",
            json!({"query": text(160)}),
            &["query"],
        ),
        spec(
            "transfer_to_human",
            "Hand the call to a human agent when the caller asks for one or you cannot help.",
            json!({"reason": text(160)}),
            &["reason"],
        ),
        spec(
            "end_call",
            "End the call once the caller has nothing more to add.",
            json!({"reason": text(160)}),
            &["reason"],
        ),
        spec(
            "send_sms",
            "Send the caller a text message (claim number, links, summaries).",
            json!({"text": text(300)}),
            &["text"],
        ),
        spec(
            "switch_language",
            "Speak another language for the rest of the call.",
            json!({"language": {"type": "string", "enum": LANGUAGES}}),
            &["language"],
        ),
    ]
}

/// Checks a tool call's arguments and returns what to do, or why not. `today` resolves relative dates.
pub fn validate(
    name: &str,
    arguments: &Value,
    schema: &ClaimSchema,
    today: NaiveDate,
) -> Result<Action, String> {
    let text = |key: &str| -> Result<String, String> {
        match arguments.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            Some(_) => Err(format!("{name}: `{key}` must be non-empty text")),
            None => Err(format!("{name}: `{key}` is missing")),
        }
    };
    Ok(match name {
        "update_claim" => {
            let field = text("field")?;
            if !schema.fields.iter().any(|f| f.name == field) {
                return Err(format!(
                    "update_claim: there is no field {field:?}; use one of {}",
                    schema
                        .fields
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let value = arguments
                .get("value")
                .filter(|v| !v.is_null())
                .cloned()
                .ok_or_else(|| "update_claim: `value` is missing".to_owned())?;
            Action::UpdateClaim { field, value }
        }
        "create_reminder" => {
            let due_text = text("due")?;
            let due = NaiveDateTime::parse_from_str(&due_text, "%Y-%m-%dT%H:%M:%S")
                .or_else(|_| NaiveDateTime::parse_from_str(&due_text, "%Y-%m-%d %H:%M"))
                .ok()
                .or_else(|| {
                    NaiveDate::parse_from_str(&due_text, "%Y-%m-%d")
                        .ok()
                        .or_else(|| future_date(&due_text, today))
                        .or_else(|| parse_date(&due_text, today))
                        .and_then(|d| d.and_hms_opt(9, 0, 0))
                })
                .ok_or_else(|| {
                    format!(
                        "create_reminder: `due` must be a date or date and time, not {due_text:?}"
                    )
                })?;
            Action::CreateReminder {
                title: text("title")?,
                due: due.format("%Y-%m-%dT%H:%M:%S").to_string(),
                owner: text("owner")?,
            }
        }
        "search_documents" => Action::SearchDocuments {
            query: text("query")?,
        },
        "transfer_to_human" => Action::TransferToHuman {
            reason: text("reason")?,
        },
        "end_call" => Action::EndCall {
            reason: text("reason")?,
        },
        "send_sms" => {
            let message = text("text")?;
            if message.chars().count() > 640 {
                return Err("send_sms: the text is longer than 640 characters".into());
            }
            Action::SendSms { text: message }
        }
        "switch_language" => {
            let language = text("language")?.to_lowercase();
            if !LANGUAGES.contains(&language.as_str()) {
                return Err(format!(
                    "switch_language: {language:?} is not one of {}",
                    LANGUAGES.join(", ")
                ));
            }
            Action::SwitchLanguage { language }
        }
        other => return Err(format!("there is no tool {other:?}")),
    })
}

/// A day ahead of `today` as a reminder's due date is said: "tomorrow", "in 3 days", "next Monday",
/// "Friday" (the next one).
fn future_date(text: &str, today: NaiveDate) -> Option<NaiveDate> {
    let lower = text.trim().to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    match words.as_slice() {
        ["today"] => Some(today),
        ["tomorrow"] => today.succ_opt(),
        ["in", n, unit] if unit.starts_with("day") || unit.starts_with("week") => {
            let n: i64 = match n.parse() {
                Ok(n) => n,
                Err(_) => {
                    let spoken = crate::numbers::words(n);
                    i64::try_from(crate::numbers::cardinal_prefix(&spoken)?.0).ok()?
                }
            };
            let days = if unit.starts_with("week") { n * 7 } else { n };
            today.checked_add_signed(chrono::Duration::days(days))
        }
        [.., day] => {
            let weekday: chrono::Weekday = day.parse().ok()?;
            let ahead = (7 + weekday.num_days_from_monday() as i64
                - today.weekday().num_days_from_monday() as i64)
                % 7;
            today.checked_add_signed(chrono::Duration::days(if ahead == 0 { 7 } else { ahead }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
    }

    #[test]
    fn every_tool_has_an_object_schema_naming_its_required_arguments() {
        let specs = tool_specs(&ClaimSchema::default());
        assert_eq!(specs.len(), 7);
        for spec in &specs {
            assert_eq!(spec.parameters["type"], "object", "{}", spec.name);
            for required in spec.parameters["required"].as_array().unwrap() {
                let key = required.as_str().unwrap();
                assert!(
                    spec.parameters["properties"].get(key).is_some(),
                    "{}: {key}",
                    spec.name
                );
            }
        }
        let fields = &specs[0].parameters["properties"]["field"]["enum"];
        assert_eq!(fields[0], "caller_name");
    }

    #[test]
    fn valid_calls_become_actions() {
        let schema = ClaimSchema::default();
        assert_eq!(
            validate(
                "update_claim",
                &json!({"field": "email", "value": "a@b.co"}),
                &schema,
                today()
            ),
            Ok(Action::UpdateClaim {
                field: "email".into(),
                value: json!("a@b.co")
            })
        );
        assert_eq!(
            validate(
                "create_reminder",
                &json!({"title": "Call back", "due": "tomorrow", "owner": "claims"}),
                &schema,
                today()
            ),
            Ok(Action::CreateReminder {
                title: "Call back".into(),
                due: "2026-11-29T09:00:00".into(),
                owner: "claims".into()
            })
        );
        assert_eq!(
            validate(
                "switch_language",
                &json!({"language": "ES"}),
                &schema,
                today()
            ),
            Ok(Action::SwitchLanguage {
                language: "es".into()
            })
        );
        // 2026-11-28 is a Saturday.
        for (said, due) in [
            ("in two days", "2026-11-30"),
            ("next Monday", "2026-11-30"),
            ("Saturday", "2026-12-05"),
            ("in 1 week", "2026-12-05"),
        ] {
            let action = validate(
                "create_reminder",
                &json!({"title": "x", "due": said, "owner": "me"}),
                &schema,
                today(),
            );
            assert!(
                matches!(&action, Ok(Action::CreateReminder { due: d, .. }) if d.starts_with(due)),
                "{said}: {action:?}"
            );
        }
    }

    #[test]
    fn bad_calls_say_what_is_wrong() {
        let schema = ClaimSchema::default();
        let cases = [
            (
                "update_claim",
                json!({"field": "shoe_size", "value": "9"}),
                "no field",
            ),
            (
                "update_claim",
                json!({"field": "email"}),
                "`value` is missing",
            ),
            (
                "create_reminder",
                json!({"title": "x", "due": "someday", "owner": "me"}),
                "`due`",
            ),
            ("end_call", json!({"reason": ""}), "non-empty"),
            (
                "switch_language",
                json!({"language": "klingon"}),
                "not one of",
            ),
            ("launch_rocket", json!({}), "no tool"),
            ("send_sms", json!({"text": "x".repeat(700)}), "640"),
        ];
        for (name, args, expected) in cases {
            let error = validate(name, &args, &schema, today()).unwrap_err();
            assert!(error.contains(expected), "{name}: {error}");
        }
    }
}
