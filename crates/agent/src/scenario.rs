//! Text-level test calls: scripted caller lines go through a real [`Conversation`], and the claim and
//! tool calls that come out are scored against what the script expects. `switchboard agent-test` runs a
//! file of them and prints the field accuracy; the shipped scenarios run as tests on the default model.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_llm::ChatModel;

use crate::claim::{FieldContext, FieldKind, FieldSpec, normalize};
use crate::config::AgentConfig;
use crate::conversation::{CallContext, Conversation};
use crate::knowledge::KnowledgeSearch;

/// One scripted call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What it exercises.
    pub name: String,
    /// The day of the call (relative dates are resolved against it).
    pub today: NaiveDate,
    /// The number the caller calls from, when the line gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_phone: Option<String>,
    /// What the caller says, turn by turn.
    pub caller: Vec<String>,
    /// What should come out.
    pub expect: Expectation,
}

/// The expected result of a scenario.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// Claim fields and their values. Typed fields compare after normalisation; text fields pass when
    /// every expected word is in the value.
    #[serde(default)]
    pub claim: BTreeMap<String, Value>,
    /// Tools that must have been called (by name), in any order.
    #[serde(default)]
    pub tools: Vec<String>,
}

/// How one expected field came out.
#[derive(Debug, Clone, Serialize)]
pub struct FieldResult {
    /// Field name.
    pub field: String,
    /// Expected value.
    pub expected: Value,
    /// What the claim holds (`null` if nothing).
    pub got: Value,
    /// Whether it matches.
    pub correct: bool,
}

/// One exchange of the scripted call.
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeRecord {
    /// The caller's line.
    pub caller: String,
    /// The agent's answer.
    pub agent: String,
    /// The recognised intent.
    pub intent: Option<String>,
    /// Tools acted on this turn.
    pub tools: Vec<String>,
    /// Time to answer the turn, understanding included.
    pub millis: u64,
    /// Of that, the time spent waiting on the model.
    pub model_millis: u64,
    /// The field the answer asked for, if any.
    pub asked: Option<String>,
}

/// The result of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// Scenario name.
    pub name: String,
    /// Per expected field.
    pub fields: Vec<FieldResult>,
    /// Tools expected but not called.
    pub missing_tools: Vec<String>,
    /// Every tool called, in order.
    pub tools_called: Vec<String>,
    /// The conversation.
    pub exchanges: Vec<ExchangeRecord>,
    /// Language-model errors met on the way.
    pub errors: Vec<String>,
    /// Questions asked again after the caller had given their answer: `(turn, field)`, turns from 1.
    pub reasked: Vec<(usize, String)>,
}

impl ScenarioReport {
    /// Expected fields filled correctly.
    pub fn correct(&self) -> usize {
        self.fields.iter().filter(|f| f.correct).count()
    }
}

/// Runs one scenario against `model`.
pub async fn run_scenario(
    model: Arc<dyn ChatModel>,
    knowledge: Option<Arc<dyn KnowledgeSearch>>,
    config: &AgentConfig,
    native_tools: bool,
    scenario: &Scenario,
) -> ScenarioReport {
    let context = CallContext {
        today: Some(scenario.today),
        caller_phone: scenario.caller_phone.clone(),
        ..CallContext::default()
    };
    let mut conversation =
        Conversation::new(model, knowledge, config.clone(), context, native_tools);
    conversation.greeting();
    let mut exchanges = Vec::new();
    let mut errors = Vec::new();
    for line in &scenario.caller {
        let started = Instant::now();
        let outcome = conversation.respond(line, &mut |_| {}).await;
        if let Some(error) = &outcome.llm_error {
            errors.push(error.clone());
        }
        exchanges.push(ExchangeRecord {
            caller: line.clone(),
            agent: outcome.reply.clone(),
            intent: outcome.intent.clone(),
            tools: outcome
                .actions
                .iter()
                .map(|a| a.tool_name().to_owned())
                .collect(),
            millis: duration_ms(started.elapsed()),
            model_millis: duration_ms(outcome.model_wait),
            asked: outcome.asked.clone(),
        });
    }
    let context = FieldContext {
        today: scenario.today,
        country_code: config.country_code.clone(),
    };
    let claim = conversation.claim();
    let fields = scenario
        .expect
        .claim
        .iter()
        .map(|(field, expected)| {
            let got = claim.values.get(field).cloned().unwrap_or(Value::Null);
            let spec = config.claim_schema.fields.iter().find(|f| &f.name == field);
            let correct = spec.is_some_and(|spec| matches(spec, expected, &got, &context));
            FieldResult {
                field: field.clone(),
                expected: expected.clone(),
                got,
                correct,
            }
        })
        .collect();
    let tools_called: Vec<String> = conversation
        .actions()
        .iter()
        .map(|a| a.tool_name().to_owned())
        .collect();
    let missing_tools = scenario
        .expect
        .tools
        .iter()
        .filter(|t| !tools_called.contains(t))
        .cloned()
        .collect();
    let reasked = reasked(config, scenario, &exchanges, &context);
    ScenarioReport {
        name: scenario.name.clone(),
        fields,
        missing_tools,
        tools_called,
        exchanges,
        errors,
        reasked,
    }
}

/// The questions the agent asked after the caller had already given the answer: an answer to turn `i`
/// that asks for a field whose expected value one of the caller's lines up to `i` holds. A line holds a
/// value when the field's own normaliser reads it from the whole line (typed fields), or when it has
/// every expected word (text fields). Scripted lines are used, not what a recogniser heard of them.
pub fn reasked(
    config: &AgentConfig,
    scenario: &Scenario,
    exchanges: &[ExchangeRecord],
    context: &FieldContext,
) -> Vec<(usize, String)> {
    exchanges
        .iter()
        .enumerate()
        .filter_map(|(i, exchange)| {
            let field = exchange.asked.as_ref()?;
            let asked_before = |line: usize| {
                line.checked_sub(1)
                    .and_then(|j| exchanges.get(j))
                    .and_then(|e| e.asked.as_deref())
            };
            given_by(config, scenario, field, i, context, asked_before)
                .then(|| (i + 1, field.clone()))
        })
        .collect()
}

/// Whether the scenario's caller lines up to `line` (from 0) give the expected value of `field`. A
/// typed value (a date, a number, an identifier, a name) is given by any line that says it; a
/// free-text one only by a line that answered the field's own question (`asked_before(line)` is the
/// field the agent asked for just before that line): a word of it said in passing ("my kitchen
/// flooded") is not yet the answer.
pub(crate) fn given_by<'a>(
    config: &AgentConfig,
    scenario: &Scenario,
    field: &str,
    line: usize,
    context: &FieldContext,
    asked_before: impl Fn(usize) -> Option<&'a str>,
) -> bool {
    let (Some(spec), Some(expected)) = (
        config.claim_schema.fields.iter().find(|f| f.name == field),
        scenario.expect.claim.get(field),
    ) else {
        return false;
    };
    let free_text = spec.kind == FieldKind::Text
        && !matches!(
            spec.entity,
            Some(crate::EntityKind::PolicyNumber | crate::EntityKind::PersonName)
        );
    scenario
        .caller
        .iter()
        .enumerate()
        .take(line + 1)
        .any(|(j, said)| {
            let answered = asked_before(j) == Some(field);
            match spec.kind {
                // "No" answers the yes/no question it follows; in passing, only a sentence about the
                // field's topic says it ("nobody was hurt").
                FieldKind::Bool => {
                    (answered && holds(spec, expected, said, context))
                        || crate::facts::states(spec, said) == expected.as_bool()
                            && expected.is_boolean()
                }
                _ => holds(spec, expected, said, context) && (!free_text || answered),
            }
        })
}

/// Whether `line` says the expected value of `spec`.
fn holds(spec: &FieldSpec, expected: &Value, line: &str, context: &FieldContext) -> bool {
    match spec.kind {
        FieldKind::Text if spec.entity != Some(crate::EntityKind::PolicyNumber) => {
            let have = words(line);
            words(&as_text(expected)).iter().all(|w| have.contains(w))
        }
        _ => match normalize(spec, &Value::String(line.to_owned()), context) {
            Ok(got) => matches(spec, expected, &got, context),
            Err(_) => false,
        },
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether `got` is the expected value of `spec`.
pub fn matches(spec: &FieldSpec, expected: &Value, got: &Value, context: &FieldContext) -> bool {
    if got.is_null() {
        return false;
    }
    match spec.kind {
        FieldKind::Text => {
            let have = words(&as_text(got));
            words(&as_text(expected)).iter().all(|w| have.contains(w))
        }
        _ => match normalize(spec, expected, context) {
            Ok(expected) => &expected == got,
            Err(_) => false,
        },
    }
}

fn as_text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// Lower-case words, ordinals as numerals ("Fifth" and "5th" are one word).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let w = w.to_lowercase();
            match crate::numbers::ordinal_word(&w) {
                Some(n) => format!("{n}th"),
                None if w.starts_with(|c: char| c.is_ascii_digit())
                    && ["st", "nd", "rd", "th"].iter().any(|s| w.ends_with(s)) =>
                {
                    format!("{}th", w.trim_end_matches(char::is_alphabetic))
                }
                None => w,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::claim::ClaimSchema;

    fn context() -> FieldContext {
        FieldContext {
            today: NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(),
            country_code: "1".into(),
        }
    }

    #[test]
    fn text_matches_when_every_expected_word_is_there_and_typed_fields_after_normalising() {
        let schema = ClaimSchema::default();
        let field = |name: &str| schema.fields.iter().find(|f| f.name == name).unwrap();
        let c = context();
        assert!(matches(
            field("incident_location"),
            &json!("Main Street"),
            &json!("on main street, Springfield"),
            &c
        ));
        assert!(!matches(
            field("incident_location"),
            &json!("Main Street"),
            &json!("Elm Street"),
            &c
        ));
        assert!(matches(
            field("incident_location"),
            &json!("5th Avenue"),
            &json!("the corner of Fifth Avenue and Pine Street"),
            &c
        ));
        assert!(matches(
            field("incident_date"),
            &json!("yesterday"),
            &json!("2026-11-27"),
            &c
        ));
        assert!(matches(
            field("callback_phone"),
            &json!("415 555 0134"),
            &json!("+14155550134"),
            &c
        ));
        assert!(matches(field("injuries"), &json!(false), &json!(false), &c));
        assert!(!matches(field("injuries"), &json!(false), &Value::Null, &c));
    }

    #[test]
    fn the_shipped_scenarios_parse_and_name_real_fields() {
        let scenarios: Vec<Scenario> =
            serde_json::from_str(include_str!("../scenarios/claims.json")).unwrap();
        assert!(scenarios.len() >= 40);
        let schema = ClaimSchema::default();
        let c = context();
        for scenario in &scenarios {
            for (field, value) in &scenario.expect.claim {
                let spec = schema.fields.iter().find(|f| &f.name == field);
                let spec = spec.unwrap_or_else(|| panic!("{}: no field {field}", scenario.name));
                // The expected value itself must be valid for its field (text fields expect words
                // of the value, not a whole one).
                if spec.kind == FieldKind::Text
                    && spec.entity != Some(crate::EntityKind::PolicyNumber)
                {
                    assert!(
                        !as_text(value).trim().is_empty(),
                        "{}: {field}",
                        scenario.name
                    );
                    continue;
                }
                normalize(
                    spec,
                    value,
                    &FieldContext {
                        today: scenario.today,
                        ..c.clone()
                    },
                )
                .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
            }
        }
    }
}
