//! What one caller turn says: the structured entities (deterministic parsers), the caller's intent and
//! the claim facts in free text (the language model, answering under a JSON schema so that even a small
//! model's answer always parses).

use chrono::NaiveDate;
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use switchboard_llm::grammar::{COPY_FROM, span_words};
use switchboard_llm::{ChatEvent, ChatModel, ChatRequest, LlmError, Message};

use crate::claim::{Claim, ClaimSchema, EntityKind, FieldKind, FieldSpec};
use crate::config::AgentConfig;
use crate::entities::{Entities, extract};

/// The facts of one caller turn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Understanding {
    /// One of the configured intent labels, when the model gave one.
    pub intent: Option<String>,
    /// Structured entities found by the parsers.
    pub entities: Entities,
    /// Claim values proposed by this turn, `(field, value as said)`, entities first. Each is validated
    /// against its field's type when applied.
    pub proposals: Vec<(String, Value)>,
}

/// The longest extraction answer; a schema-constrained answer is short JSON.
const EXTRACTION_MAX_TOKENS: u32 = 160;

/// Reads one caller turn. `asked` is the field the agent's last question was about, `agent_said` that
/// question. `label_needed` says whether an intent label could change what the turn does; when not, the
/// model is not asked for one. An engine failure leaves the intent and free-text facts out; entities are
/// always there.
#[allow(clippy::too_many_arguments)]
pub async fn understand(
    model: &dyn ChatModel,
    config: &AgentConfig,
    claim: &Claim,
    asked: Option<&str>,
    agent_said: &str,
    caller_said: &str,
    today: NaiveDate,
    label_needed: bool,
) -> (Understanding, Option<LlmError>) {
    let schema = &config.claim_schema;
    let entities = extract(caller_said, today, &config.country_code);
    let mut proposals = entity_proposals(schema, claim, asked, &entities);
    let asked_field = asked.and_then(|a| schema.fields.iter().find(|f| f.name == a));
    // A caller who answered with another kind of fact (a phone number when asked for the vehicle) has
    // not answered the question; the model is not asked to find an answer in those words.
    let answered_elsewhere = proposals
        .iter()
        .any(|(name, _)| Some(name.as_str()) != asked);
    if let Some(field) = asked_field
        && field.kind == FieldKind::Bool
        && let Some(answer) = yes_or_no(caller_said)
    {
        proposals.push((field.name.clone(), Value::Bool(answer)));
    }
    let mut understanding = Understanding {
        intent: None,
        entities,
        proposals: Vec::new(),
    };
    // A line made only of one intent's cue words and courtesies ("Goodbye.", "Okay, thanks, bye") is
    // that intent, without asking the model; and it answers no question, so nothing is extracted from it
    // (a 135M model took "Goodbye" for the caller's name).
    if let Some(intent) = cue_only_intent(config, caller_said) {
        understanding.intent = Some(intent);
        understanding.proposals = proposals;
        return (understanding, None);
    }
    let mut failure = None;
    if label_needed {
        match complete(model, &intent_request(config, caller_said)).await {
            Ok(answer) => {
                understanding.intent = serde_json::from_str::<String>(answer.trim())
                    .ok()
                    .filter(|i| config.intents.iter().any(|known| known == i));
            }
            Err(error) => failure = Some(error),
        }
    }

    // The model is asked for one field: the one the agent just asked about, when the parsers did not
    // fill it. Answering a question is a task a small model gets right; spotting every fact in a sentence
    // is not (SmolLM2-135M took "Hi" for a name and a car for a place when asked for all fields at once).
    let open: Vec<&FieldSpec> = schema
        .fields
        .iter()
        .filter(|f| Some(f.name.as_str()) == asked && !answered_elsewhere)
        // Yes/no is read by `yes_or_no`; the model's true/false on other words is a guess.
        .filter(|f| f.kind != FieldKind::Bool)
        .filter(|f| !proposals.iter().any(|(name, _)| name == &f.name))
        .collect();
    if open.is_empty() || failure.is_some() {
        understanding.proposals = proposals;
        return (understanding, failure);
    }
    let request = extraction_request(config, &open, asked, agent_said, caller_said, today);
    let answer = match complete(model, &request).await {
        Ok(answer) => answer,
        Err(error) => {
            understanding.proposals = proposals;
            return (understanding, Some(error));
        }
    };
    let parsed = switchboard_llm::lenient::parse_arguments(&answer).ok();
    if let Some(Value::Object(object)) = parsed {
        for field in &open {
            match object.get(&field.name) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if is_empty_answer(s) => {}
                Some(Value::String(s)) if !grounded(s, caller_said) => {
                    tracing::debug!(field = %field.name, value = %s, "extracted value is not in the caller's words");
                }
                Some(value) => proposals.push((field.name.clone(), value.clone())),
            }
        }
    } else {
        tracing::warn!(answer = %answer, "extraction answer is not a JSON object");
    }
    understanding.proposals = proposals;
    (understanding, None)
}

/// Whether every word of `value` is among the caller's words: a text fact must come from what the caller
/// said, not from the agent's line or the model's imagination.
fn grounded(value: &str, caller_said: &str) -> bool {
    let said: Vec<String> = span_words(caller_said)
        .iter()
        .map(|w| w.to_lowercase())
        .collect();
    let words = span_words(value);
    !words.is_empty() && words.iter().all(|w| said.contains(&w.to_lowercase()))
}

/// A plain yes or no at the start of an answer to a yes/no question ("No, nobody was hurt", "Yes, my
/// passenger"), or a clear negation ("nobody was injured", "I'm fine"). `None` when it says neither.
pub fn yes_or_no(text: &str) -> Option<bool> {
    let words: Vec<String> = span_words(text).iter().map(|w| w.to_lowercase()).collect();
    for word in &words {
        match word.as_str() {
            "no" | "nope" | "nobody" | "none" | "noone" | "nothing" | "not" | "fine"
            | "neither" => {
                return Some(false);
            }
            "yes" | "yeah" | "yep" | "yup" | "correct" => return Some(true),
            w if w.ends_with("n't") => return Some(false),
            _ => {}
        }
    }
    None
}

/// Words that carry no request of their own around a cue ("okay, thanks, bye").
const COURTESIES: &[&str] = &[
    "ok", "okay", "alright", "all", "right", "thanks", "thank", "you", "very", "much", "so",
    "well", "then", "oh", "um", "uh", "and", "no", "yes", "have", "a", "nice", "good", "great",
    "day", "for", "your", "help", "again", "cheers", "bye",
];

/// A line in the form cue words are matched in: lower case, every character but letters, digits and
/// the apostrophe turned into a space, runs of spaces collapsed, and one space at each end, so a cue is
/// found as `" {cue} "` only as whole words ("a—person" holds the cue "a person", "hangar" not "hang").
pub(crate) fn cue_text(line: &str) -> String {
    let spaced = line
        .to_lowercase()
        .replace(|c: char| !c.is_alphanumeric() && c != '\'', " ");
    format!(
        " {} ",
        spaced.split_whitespace().collect::<Vec<_>>().join(" ")
    )
}

/// The intent a line names by its cue words alone (see `AgentConfig::intent_cues`), when nothing else
/// but courtesies is said. `None` when the line says anything more, or names two intents.
pub(crate) fn cue_only_intent(config: &AgentConfig, caller_said: &str) -> Option<String> {
    let mut found = None;
    let mut rest = cue_text(caller_said);
    for (intent, cues) in &config.intent_cues {
        let mut named = false;
        for cue in cues {
            let cue = cue_text(cue);
            while let Some(at) = rest.find(&cue) {
                rest.replace_range(at..at + cue.len(), " ");
                named = true;
            }
        }
        if named {
            if found.is_some() {
                return None;
            }
            found = Some(intent.clone());
        }
    }
    let only_courtesies = rest.split_whitespace().all(|w| COURTESIES.contains(&w));
    found.filter(|intent| only_courtesies && config.intents.contains(intent))
}

/// Classifies the caller's words into one of the configured intents, shown the configured examples
/// first: a small model labels far better from examples than from label names, and the examples form a
/// fixed prefix the engine keeps cached.
fn intent_request(config: &AgentConfig, caller_said: &str) -> ChatRequest {
    let mut messages = vec![Message::system(format!(
        "Label what the caller wants. Answer with one label: {}.",
        config.intents.join(", ")
    ))];
    for (example, label) in &config.intent_examples {
        messages.push(Message::user(example.clone()));
        messages.push(Message::assistant(format!("\"{label}\"")));
    }
    messages.push(Message::user(caller_said));
    ChatRequest {
        messages,
        tools: Vec::new(),
        temperature: None,
        max_tokens: Some(16),
        response_schema: Some(json!({"enum": config.intents})),
        background: false,
    }
}

/// Values the model writes when it means "not said".
fn is_empty_answer(text: &str) -> bool {
    let t = text
        .trim()
        .trim_matches(|c: char| c.is_ascii_punctuation())
        .to_lowercase();
    t.is_empty()
        || matches!(
            t.as_str(),
            "null" | "none" | "n/a" | "unknown" | "not said" | "not mentioned"
        )
}

/// Claim values the parsers found: each entity goes to the field of its kind the agent asked about, else
/// to the first such field still empty.
fn entity_proposals(
    schema: &ClaimSchema,
    claim: &Claim,
    asked: Option<&str>,
    entities: &Entities,
) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let found: [(EntityKind, Vec<Value>); 5] = [
        (
            EntityKind::Phone,
            entities.phones.iter().map(|p| json!(p)).collect(),
        ),
        (
            EntityKind::Email,
            entities.emails.iter().map(|e| json!(e)).collect(),
        ),
        (
            EntityKind::Date,
            entities
                .dates
                .iter()
                .map(|d| json!(d.format("%Y-%m-%d").to_string()))
                .collect(),
        ),
        (
            EntityKind::Amount,
            entities
                .amounts
                .iter()
                .map(|a| json!(a.minor_units as f64 / 100.0))
                .collect(),
        ),
        (
            EntityKind::PolicyNumber,
            entities.policy_numbers.iter().map(|p| json!(p)).collect(),
        ),
    ];
    for (kind, values) in found {
        let Some(value) = values.into_iter().next() else {
            continue;
        };
        let fields: Vec<&FieldSpec> = schema
            .fields
            .iter()
            .filter(|f| f.entity_kind() == Some(kind))
            .collect();
        let target = fields
            .iter()
            .find(|f| Some(f.name.as_str()) == asked)
            .or_else(|| fields.iter().find(|f| !claim.values.contains_key(&f.name)));
        if let Some(field) = target {
            out.push((field.name.clone(), value));
        }
    }
    out
}

/// The JSON Schema of the extraction answer: each open field as its type or null; text is a copy of the
/// caller's words.
fn answer_schema(open: &[&FieldSpec], caller_said: &str) -> Value {
    let mut properties = Map::new();
    for field in open {
        let schema = match &field.kind {
            FieldKind::Bool => json!({"type": ["boolean", "null"]}),
            FieldKind::Number => json!({"type": ["number", "null"]}),
            FieldKind::Enum { values } => {
                let mut options: Vec<Value> = values.iter().map(|v| json!(v)).collect();
                options.push(Value::Null);
                json!({"enum": options})
            }
            _ => json!({"anyOf": [{"type": "string", COPY_FROM: caller_said}, {"type": "null"}]}),
        };
        properties.insert(field.name.clone(), schema);
    }
    let required: Vec<&String> = properties.keys().collect();
    json!({"type": "object", "properties": properties, "required": required})
}

fn extraction_request(
    config: &AgentConfig,
    open: &[&FieldSpec],
    asked: Option<&str>,
    agent_said: &str,
    caller_said: &str,
    today: NaiveDate,
) -> ChatRequest {
    let mut instructions = format!(
        "You read one turn of a phone call to {} and write JSON. Today is {}.\n",
        config.persona.company,
        today.format("%A %Y-%m-%d"),
    );
    for field in open {
        instructions.push_str(&format!("{}: {}", field.name, field.description));
        if field.kind == FieldKind::Bool {
            instructions.push_str(" (true or false)");
        }
        instructions.push_str(", copied from the caller's words, or null if not said.\n");
    }
    if let Some(asked) = asked {
        instructions.push_str(&format!("The agent just asked for {asked}.\n"));
    }
    ChatRequest {
        messages: vec![
            Message::system(instructions),
            Message::user(format!("Agent: {agent_said}\nCaller: {caller_said}")),
        ],
        tools: Vec::new(),
        temperature: None,
        max_tokens: Some(EXTRACTION_MAX_TOKENS),
        response_schema: Some(answer_schema(open, caller_said)),
        background: false,
    }
}

/// Runs `request` to the end and returns its text.
pub(crate) async fn complete(
    model: &dyn ChatModel,
    request: &ChatRequest,
) -> Result<String, LlmError> {
    let mut stream = model.chat(request).await?;
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        match event? {
            ChatEvent::Text(delta) => text.push_str(&delta),
            ChatEvent::ToolCall(call) => text.push_str(&call.arguments.to_string()),
            ChatEvent::Done(_) => break,
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_of_cue_words_and_courtesies_names_its_intent() {
        let config = AgentConfig::default();
        for line in [
            "Goodbye.",
            "Okay, thanks, bye!",
            "No, that's all. Thank you, goodbye.",
            "Bye-bye",
        ] {
            assert_eq!(
                cue_only_intent(&config, line).as_deref(),
                Some("goodbye"),
                "{line}"
            );
        }
        assert_eq!(
            cue_only_intent(&config, "A human, please, now").as_deref(),
            None,
            "\"please\" and \"now\" are words of a request the model reads"
        );
        for line in [
            "My name is Bye.",
            "Goodbye, can I talk to a person",
            "Hello",
            "",
            "Thanks",
        ] {
            assert_eq!(cue_only_intent(&config, line), None, "{line}");
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
    }

    #[test]
    fn entities_fill_the_asked_field_or_the_first_empty_one_of_their_kind() {
        let schema = ClaimSchema::default();
        let claim = Claim::default();
        let entities = extract(
            "my policy is AB-12345, call me on 415 555 0134, it happened yesterday",
            today(),
            "1",
        );
        let proposals = entity_proposals(&schema, &claim, None, &entities);
        assert!(
            proposals.contains(&("policy_number".into(), json!("AB12345"))),
            "{proposals:?}"
        );
        assert!(
            proposals.contains(&("callback_phone".into(), json!("+14155550134"))),
            "{proposals:?}"
        );
        assert!(
            proposals.contains(&("incident_date".into(), json!("2026-11-27"))),
            "{proposals:?}"
        );
    }

    #[test]
    fn the_answer_schema_offers_each_open_field_or_null() {
        let config = AgentConfig::default();
        let open: Vec<&FieldSpec> = config
            .claim_schema
            .fields
            .iter()
            .filter(|f| f.name == "injuries" || f.name == "caller_name")
            .collect();
        let schema = answer_schema(&open, "I'm Ana Lopez");
        assert_eq!(
            schema["properties"]["injuries"]["type"],
            json!(["boolean", "null"])
        );
        assert_eq!(
            schema["properties"]["caller_name"]["anyOf"][0][COPY_FROM],
            "I'm Ana Lopez"
        );
        assert_eq!(schema["required"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn yes_and_no_as_callers_say_them() {
        for (text, expected) in [
            ("No, nobody was hurt.", Some(false)),
            ("Yes, my passenger hurt her neck.", Some(true)),
            ("Thankfully nobody was injured.", Some(false)),
            ("No injuries.", Some(false)),
            ("No, I'm fine.", Some(false)),
            ("It wasn't serious", Some(false)),
            ("My passenger broke his wrist", None),
        ] {
            assert_eq!(yes_or_no(text), expected, "{text}");
        }
    }

    #[test]
    fn only_the_callers_words_are_grounded() {
        assert!(grounded("Ana Lopez", "Hi, I'm ana lopez."));
        assert!(!grounded("Alex", "Hi, I'm Ana Lopez."));
        assert!(!grounded("", "anything"));
    }

    #[test]
    fn empty_answers_are_not_values() {
        for text in ["", "null", "N/A", "unknown.", " none "] {
            assert!(is_empty_answer(text), "{text}");
        }
        assert!(!is_empty_answer("Ana Lopez"));
    }
}
