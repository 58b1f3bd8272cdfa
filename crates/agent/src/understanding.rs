//! What one caller turn says: the claim facts every field's reader finds in it ([`crate::facts`]), the
//! caller's intent when it could change what the turn does, and, when the readers found nothing for the
//! field just asked about, a span of the caller's words the language model picks for it. The model never
//! holds a turn for long: its answers are awaited for at most [`MODEL_BUDGET`]; a late extraction is
//! kept and merged on a later turn, a late intent label is dropped.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{BoxFuture, Shared};
use futures_util::{FutureExt, StreamExt};
use serde_json::{Map, Value, json};
use switchboard_llm::grammar::{COPY_FROM, span_words};
use switchboard_llm::{ChatEvent, ChatModel, ChatRequest, LlmError, Message};

use crate::claim::{FieldKind, FieldSpec};
use crate::config::AgentConfig;
use crate::entities::{Entities, extract};
use crate::facts::{Proposal, TurnContext, Weight, read_turn};

/// The longest a turn waits for the model's answer (intent label or extraction). On two cores the
/// embedded model answers a short constrained question in 0.2 to 1 s when nothing else runs; behind a
/// transcription it can take several seconds, and the caller must not wait for that.
pub const MODEL_BUDGET: Duration = Duration::from_millis(1200);

/// An extraction still running when its turn was answered: `(field, value)` once it comes, if any.
pub type LateFact = Shared<BoxFuture<'static, Option<(String, Value)>>>;

/// The facts of one caller turn.
#[derive(Debug, Clone, Default)]
pub struct Understanding {
    /// One of the configured intent labels, when the model gave one.
    pub intent: Option<String>,
    /// Structured entities found by the parsers.
    pub entities: Entities,
    /// Claim values proposed by this turn, in schema order, each validated against its field's type
    /// when applied.
    pub proposals: Vec<Proposal>,
    /// The model's extraction, when it did not answer within the budget.
    pub late: Option<LateFact>,
    /// How long the turn waited on the model: zero when the model was not asked.
    pub model_wait: Duration,
}

/// The longest extraction answer; a schema-constrained answer is short JSON.
const EXTRACTION_MAX_TOKENS: u32 = 160;

/// What the turn needs to be read.
#[derive(Debug)]
pub struct Turn<'a> {
    /// The field the agent's last question was about.
    pub asked: Option<&'a str>,
    /// That question.
    pub agent_said: &'a str,
    /// What the caller said.
    pub caller_said: &'a str,
    /// The readers' context (day, country, the caller's number).
    pub context: TurnContext<'a>,
    /// Whether an intent label could change what the turn does.
    pub label_needed: bool,
    /// The turn is a question the company's documents answer: it answers no question of the agent's,
    /// so the model is not asked which of its words do.
    pub answered_from_documents: bool,
}

/// Reads one caller turn. An engine failure or a late answer leaves the intent and the model's fact
/// out; the readers' facts are always there.
pub async fn understand(
    model: &Arc<dyn ChatModel>,
    config: &AgentConfig,
    turn: &Turn<'_>,
) -> (Understanding, Option<LlmError>) {
    let schema = &config.claim_schema;
    let caller_said = turn.caller_said;
    let context = &turn.context;
    let entities = extract(caller_said, context.today, &config.country_code);
    let proposals = read_turn(&schema.fields, caller_said, context);
    let mut understanding = Understanding {
        intent: None,
        entities,
        proposals,
        late: None,
        model_wait: Duration::ZERO,
    };
    // A line made only of one intent's cue words and courtesies ("Goodbye.", "Okay, thanks, bye") is
    // that intent, without asking the model; and it answers no question, so nothing is extracted from it
    // (a 135M model took "Goodbye" for the caller's name).
    if let Some(intent) = cue_only_intent(config, caller_said) {
        understanding.intent = Some(intent);
        return (understanding, None);
    }
    let started = std::time::Instant::now();
    let mut failure = None;
    let mut asked_model = false;
    if asks_for_a_person(config, caller_said) {
        understanding.intent = Some("speak_to_human".to_owned());
    } else if turn.label_needed {
        asked_model = true;
        match bounded(model, intent_request(config, caller_said)).await {
            Ok(Some(answer)) => {
                understanding.intent = serde_json::from_str::<String>(answer.trim())
                    .ok()
                    .filter(|i| config.intents.iter().any(|known| known == i));
            }
            Ok(None) => {
                tracing::info!("the intent label came too late; the turn goes on without it")
            }
            Err(error) => failure = Some(error),
        }
    }

    // The model is asked for one field: the one the agent just asked about, when its reader found
    // nothing and the caller gave no other fact instead (a phone number when asked for the vehicle does
    // not answer the question). Yes/no, dates, numbers and identifiers are the readers' alone.
    let asked_field = turn
        .asked
        .and_then(|a| schema.fields.iter().find(|f| f.name == a))
        .filter(|f| {
            matches!(f.kind, FieldKind::Text) && f.entity != Some(crate::EntityKind::PolicyNumber)
        })
        .filter(|_| understanding.proposals.is_empty())
        .filter(|_| !turn.answered_from_documents)
        .filter(|_| !span_words(caller_said).is_empty());
    let Some(field) = asked_field.filter(|_| failure.is_none()) else {
        if asked_model {
            understanding.model_wait = started.elapsed();
        }
        return (understanding, failure);
    };
    let request = extraction_request(config, field, turn.agent_said, caller_said, context.today);
    let name = field.name.clone();
    let said = caller_said.to_owned();
    let task = {
        let model = model.clone();
        async move {
            match complete(model.as_ref(), &request).await {
                Ok(answer) => span_answer(&answer, &name, &said).map(|v| (name, v)),
                Err(error) => {
                    tracing::warn!(%error, "the model's extraction failed");
                    None
                }
            }
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let handle = runtime.spawn(task);
            let late: LateFact = handle.map(|r| r.ok().flatten()).boxed().shared();
            match tokio::time::timeout(MODEL_BUDGET.saturating_sub(started.elapsed()), late.clone())
                .await
            {
                Ok(found) => understanding.proposals.extend(answer_proposal(found)),
                Err(_) => {
                    tracing::info!(field = %field.name, "the model's extraction is late; merged when it comes");
                    understanding.late = Some(late);
                }
            }
        }
        Err(_) => understanding.proposals.extend(answer_proposal(task.await)),
    }
    understanding.model_wait = started.elapsed();
    (understanding, failure)
}

/// The model's value as the answer to the question asked.
fn answer_proposal(found: Option<(String, Value)>) -> Option<Proposal> {
    found.map(|(field, value)| Proposal {
        field,
        value,
        weight: Weight::Answer,
    })
}

/// Runs `request` for at most the model budget: `Ok(None)` when it is late (then it is stopped).
async fn bounded(
    model: &Arc<dyn ChatModel>,
    request: ChatRequest,
) -> Result<Option<String>, LlmError> {
    let model = model.clone();
    let work = async move { complete(model.as_ref(), &request).await };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let mut handle = runtime.spawn(work);
            match tokio::time::timeout(MODEL_BUDGET, &mut handle).await {
                Ok(Ok(result)) => result.map(Some),
                Ok(Err(join)) => Err(LlmError::Protocol {
                    engine: "model task".into(),
                    detail: join.to_string(),
                }),
                Err(_) => {
                    handle.abort();
                    Ok(None)
                }
            }
        }
        Err(_) => work.await.map(Some),
    }
}

/// The value the model's answer gives `field`, when it is one and is made of the caller's words.
fn span_answer(answer: &str, field: &str, caller_said: &str) -> Option<Value> {
    let parsed = switchboard_llm::lenient::parse_arguments(answer).ok();
    let Some(Value::Object(object)) = parsed else {
        // Its text is not logged: it may hold what the caller said.
        tracing::warn!(
            chars = answer.len(),
            "extraction answer is not a JSON object"
        );
        return None;
    };
    match object.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if is_empty_answer(s) => None,
        Some(Value::String(s)) if !grounded(s, caller_said) => {
            tracing::debug!(field, "extracted value is not in the caller's words");
            None
        }
        Some(value) => Some(value.clone()),
    }
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

/// Words that carry no request of their own around a cue ("okay, thanks, bye").
const COURTESIES: &[&str] = &[
    "ok", "okay", "alright", "all", "right", "thanks", "thank", "you", "very", "much", "so",
    "well", "then", "oh", "um", "uh", "and", "no", "yes", "have", "a", "nice", "good", "great",
    "day", "for", "your", "help", "again", "cheers", "bye", "nope", "nah", "yeah", "yep", "yup",
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

/// Words that ask to be put through to someone.
const PUT_THROUGH: &[&str] = &[
    "speak to",
    "talk to",
    "speak with",
    "talk with",
    "transfer me",
    "connect me",
    "put me through",
    "get me",
    "let me speak",
    "let me talk",
];

/// Whether the caller asks in so many words to speak to a person ("can I speak to a real person",
/// "I want to talk to a human agent"): a request phrase and one of `speak_to_human`'s cue words. Such a
/// line needs no model to be understood, and a transfer must never wait on one.
pub(crate) fn asks_for_a_person(config: &AgentConfig, caller_said: &str) -> bool {
    let said = cue_text(caller_said);
    config.intents.iter().any(|i| i == "speak_to_human")
        && PUT_THROUGH
            .iter()
            .any(|phrase| said.contains(&format!(" {phrase} ")))
        && config
            .intent_cues
            .get("speak_to_human")
            .is_some_and(|cues| cues.iter().any(|cue| said.contains(&cue_text(cue))))
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

/// The JSON Schema of the extraction answer: the field as a copy of the caller's words, or null.
fn answer_schema(field: &FieldSpec, caller_said: &str) -> Value {
    let mut properties = Map::new();
    properties.insert(
        field.name.clone(),
        json!({"anyOf": [{"type": "string", COPY_FROM: caller_said}, {"type": "null"}]}),
    );
    json!({"type": "object", "properties": properties, "required": [field.name]})
}

/// Asks the model which of the caller's words answer the question about `field`.
fn extraction_request(
    config: &AgentConfig,
    field: &FieldSpec,
    agent_said: &str,
    caller_said: &str,
    today: chrono::NaiveDate,
) -> ChatRequest {
    let instructions = format!(
        "You read one turn of a phone call to {} and write JSON. Today is {}.\n\
         The agent just asked for {}. {}: {}, copied from the caller's words, or null if not said.\n",
        config.persona.company,
        today.format("%A %Y-%m-%d"),
        field.name,
        field.name,
        field.description,
    );
    ChatRequest {
        messages: vec![
            Message::system(instructions),
            Message::user(format!("Agent: {agent_said}\nCaller: {caller_said}")),
        ],
        tools: Vec::new(),
        temperature: None,
        max_tokens: Some(EXTRACTION_MAX_TOKENS),
        response_schema: Some(answer_schema(field, caller_said)),
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
            // Heard in a spoken call (2026-12-05): the model labelled it otherwise, and the agent read its
            // wrap-up again instead of saying goodbye.
            "Nope, bye.",
            "Nah, that's it. Bye.",
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

    #[test]
    fn the_answer_schema_is_the_field_or_null() {
        let config = AgentConfig::default();
        let field = &config.claim_schema.fields[0];
        let schema = answer_schema(field, "I'm Ana Lopez");
        assert_eq!(
            schema["properties"]["caller_name"]["anyOf"][0][COPY_FROM],
            "I'm Ana Lopez"
        );
        assert_eq!(schema["required"], json!(["caller_name"]));
    }

    #[test]
    fn a_request_for_a_person_needs_no_model() {
        let config = AgentConfig::default();
        for line in [
            "Actually, can I speak to a real person please?",
            "Hi, this is Mark Stone, I want to talk to a human agent.",
            "This is too complicated, I want to speak to a representative.",
        ] {
            assert!(asks_for_a_person(&config, line), "{line}");
        }
        for line in [
            "The other person drove off.",
            "I spoke to your agent last week about it.",
        ] {
            assert!(!asks_for_a_person(&config, line), "{line}");
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
