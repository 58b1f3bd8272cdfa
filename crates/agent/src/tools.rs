//! The tools the agent may use during a call, their argument schemas, and the check that turns a model's
//! tool call into an [`Action`] before anything happens. A call with missing or ill-typed arguments, or
//! to a tool not offered, is refused with a reason that goes back to the model, never acted on. Only
//! tools that act are offered: the claim, a transfer, the end of the call, and document search when the
//! node has documents. Reminders, text messages and switching language are not offered until they act
//! (stored and sent, with the recogniser and voice switched).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_llm::ToolSpec;

use crate::claim::ClaimSchema;

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
}

impl Action {
    /// The tool's name.
    pub fn tool_name(&self) -> &'static str {
        match self {
            Action::UpdateClaim { .. } => "update_claim",
            Action::SearchDocuments { .. } => "search_documents",
            Action::TransferToHuman { .. } => "transfer_to_human",
            Action::EndCall { .. } => "end_call",
        }
    }
}

/// The tool definitions the model is offered, with `update_claim`'s field names from `schema`;
/// `search_documents` only with `documents` (a knowledge base to search).
pub fn tool_specs(schema: &ClaimSchema, documents: bool) -> Vec<ToolSpec> {
    let fields: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
    let text = |max: u32| json!({"type": "string", "maxLength": max});
    let spec = |name: &str, description: &str, properties: Value, required: &[&str]| ToolSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        parameters: json!({"type": "object", "properties": properties, "required": required}),
    };
    let mut specs = vec![
        spec(
            "update_claim",
            "Record one fact the caller gave for the claim.",
            json!({"field": {"type": "string", "enum": fields}, "value": text(200)}),
            &["field", "value"],
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
    ];
    if documents {
        specs.push(spec(
            "search_documents",
            "Look up the company's documents (policies, coverage, procedures) to answer a question.",
            json!({"query": text(160)}),
            &["query"],
        ));
    }
    specs
}

/// Checks a call to one of `offered`'s tools and returns what to do, or why not.
pub fn validate(
    name: &str,
    arguments: &Value,
    schema: &ClaimSchema,
    offered: &[ToolSpec],
) -> Result<Action, String> {
    if !offered.iter().any(|tool| tool.name == name) {
        return Err(format!(
            "there is no tool {name:?}; use one of {}",
            offered
                .iter()
                .map(|tool| tool.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
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
        "search_documents" => Action::SearchDocuments {
            query: text("query")?,
        },
        "transfer_to_human" => Action::TransferToHuman {
            reason: text("reason")?,
        },
        "end_call" => Action::EndCall {
            reason: text("reason")?,
        },
        other => return Err(format!("{other:?} cannot be carried out")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_offered_has_an_object_schema_naming_its_required_arguments() {
        let specs = tool_specs(&ClaimSchema::default(), true);
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        // Each acts, and a test observes it: the claim (conversation tests), the transfer and the end
        // (the whole-call tests over Twilio and SIP), the search (`a_question_is_answered_from_the_documents`).
        assert_eq!(
            names,
            [
                "update_claim",
                "transfer_to_human",
                "end_call",
                "search_documents"
            ]
        );
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
        let without_documents = tool_specs(&ClaimSchema::default(), false);
        assert!(
            without_documents
                .iter()
                .all(|s| s.name != "search_documents"),
            "no search without documents"
        );
    }

    #[test]
    fn valid_calls_become_actions() {
        let schema = ClaimSchema::default();
        let offered = tool_specs(&schema, true);
        assert_eq!(
            validate(
                "update_claim",
                &json!({"field": "email", "value": "a@b.co"}),
                &schema,
                &offered
            ),
            Ok(Action::UpdateClaim {
                field: "email".into(),
                value: json!("a@b.co")
            })
        );
        assert_eq!(
            validate(
                "transfer_to_human",
                &json!({"reason": "asked for a person"}),
                &schema,
                &offered
            ),
            Ok(Action::TransferToHuman {
                reason: "asked for a person".into()
            })
        );
    }

    #[test]
    fn bad_calls_say_what_is_wrong() {
        let schema = ClaimSchema::default();
        let offered = tool_specs(&schema, false);
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
            ("end_call", json!({"reason": ""}), "non-empty"),
            ("launch_rocket", json!({}), "no tool"),
            // Not offered: nothing would act on them.
            ("send_sms", json!({"text": "hello"}), "no tool"),
            ("search_documents", json!({"query": "flood"}), "no tool"),
        ];
        for (name, args, expected) in cases {
            let error = validate(name, &args, &schema, &offered).unwrap_err();
            assert!(error.contains(expected), "{name}: {error}");
        }
    }
}
