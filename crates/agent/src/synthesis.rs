//! The post-call synthesis stored with the call: short and long summary, the caller's satisfaction,
//! what the agent could have done better, and the next action. It is built from the record, not
//! imagined: what was reported comes from the claim, what is missing from the schema, the next action
//! from what the call did. The model writes at most one sentence, a plain description of what happened,
//! and that sentence is kept only if every content word of it was said by the caller; otherwise the
//! caller's own description is used.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_llm::grammar::span_words;
use switchboard_llm::{ChatModel, ChatRequest, LlmError, Message};

use crate::claim::{Claim, ClaimSchema, EntityKind, FieldKind};
use crate::tools::Action;
use crate::understanding::complete;

/// What should happen after the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NextAction {
    /// Nothing more to do.
    CaseClosed,
    /// The claim needs work by the claims team.
    FollowUp,
    /// A person must call the caller back.
    HumanCallback,
    /// The caller may be interested in an offer.
    CommercialOffer,
}

/// The synthesis of a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Synthesis {
    /// One sentence.
    pub short_summary: String,
    /// A paragraph.
    pub long_summary: String,
    /// 1 (unhappy) to 5 (delighted), as the conversation suggests.
    pub satisfaction: u8,
    /// What the agent could have done better.
    pub improvement: String,
    /// What happens next.
    pub next_action: NextAction,
}

/// Tokens for the model's sentence (at most 160 characters) and its JSON.
const SENTENCE_MAX_TOKENS: u32 = 96;

/// Words that carry no content: a sentence may use them without the caller having said them.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "of", "to", "in", "on", "at", "by", "for", "with",
    "from", "into", "onto", "was", "were", "is", "are", "be", "been", "had", "has", "have", "did",
    "do", "it", "its", "their", "his", "her", "they", "he", "she", "caller", "caller's", "callers",
    "reported", "reports", "that", "this", "while", "when", "after", "before", "then", "as",
    "which", "who", "there", "some", "someone", "no", "not", "one", "up", "off", "out", "over",
];

/// Whether every content word of `sentence` is among the words the caller said.
fn grounded(sentence: &str, caller_words: &[String]) -> bool {
    let words = span_words(sentence);
    !words.is_empty()
        && words.iter().all(|w| {
            let w = w.to_lowercase();
            FUNCTION_WORDS.contains(&w.as_str()) || caller_words.contains(&w)
        })
}

/// Writes the synthesis of a call from its transcript (`(speaker, text)` pairs) and the claim. The
/// model is asked for one sentence describing what happened; when it fails or its sentence holds a
/// word the caller did not say, the caller's own description stands in.
pub async fn synthesize(
    model: &dyn ChatModel,
    transcript: &[(String, String)],
    claim: &Claim,
    schema: &ClaimSchema,
    actions: &[Action],
) -> Result<Synthesis, LlmError> {
    let caller_lines: Vec<&str> = transcript
        .iter()
        .filter(|(speaker, _)| speaker == "caller")
        .map(|(_, text)| text.as_str())
        .collect();
    let mut synthesis = synthesis_from_record(claim, schema, actions);
    synthesis.satisfaction = satisfaction(transcript, actions);
    if caller_lines.is_empty() {
        return Ok(synthesis);
    }
    let caller_words: Vec<String> = caller_lines
        .iter()
        .flat_map(|line| span_words(line))
        .map(|w| w.to_lowercase())
        .collect();
    let request = ChatRequest {
        messages: vec![
            Message::system(
                "Write one short sentence saying what happened to the caller, using only the \
                 caller's own words. Answer in JSON.",
            ),
            Message::user(format!("The caller said:\n{}", caller_lines.join("\n"))),
        ],
        tools: Vec::new(),
        temperature: None,
        max_tokens: Some(SENTENCE_MAX_TOKENS),
        response_schema: Some(json!({
            "type": "object",
            "properties": {"sentence": {"type": "string", "maxLength": 160}},
            "required": ["sentence"],
        })),
        background: true,
    };
    let answer = complete(model, &request).await?;
    let sentence = switchboard_llm::lenient::parse_arguments(&answer)
        .ok()
        .and_then(|v| v.get("sentence").and_then(Value::as_str).map(str::to_owned))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    match sentence {
        Some(sentence) if grounded(&sentence, &caller_words) => {
            let sentence = finish_sentence(&sentence);
            synthesis.long_summary = format!("{sentence} {}", synthesis.long_summary);
        }
        Some(sentence) => {
            // Not the sentence itself: it may hold what the caller said.
            tracing::info!(
                words = sentence.split_whitespace().count(),
                "the model's sentence uses words the caller did not say; the record stands alone"
            );
        }
        None => tracing::info!("the model wrote no sentence; the record stands alone"),
    }
    Ok(synthesis)
}

fn finish_sentence(text: &str) -> String {
    let text = text.trim();
    let mut out: String = match text.chars().next() {
        Some(first) => first.to_uppercase().chain(text.chars().skip(1)).collect(),
        None => String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// 1 to 5 from what the call shows: 3 by default, one more when the caller thanked the agent, one less
/// when they asked for a person, one less when the agent had to apologise or ask again more than once.
fn satisfaction(transcript: &[(String, String)], actions: &[Action]) -> u8 {
    let caller = |cue: &str| {
        transcript
            .iter()
            .any(|(s, t)| s == "caller" && t.to_lowercase().contains(cue))
    };
    let agent_repairs = transcript
        .iter()
        .filter(|(s, t)| {
            s == "agent" && (t.starts_with("Sorry") || t.starts_with("I'm sorry, I didn't"))
        })
        .count();
    let mut score: i32 = 3;
    if caller("thank") {
        score += 1;
    }
    if actions
        .iter()
        .any(|a| matches!(a, Action::TransferToHuman { .. }))
    {
        score -= 1;
    }
    if agent_repairs > 1 {
        score -= 1;
    }
    score.clamp(1, 5) as u8
}

/// How a stored value reads in a summary.
fn value_text(kind: &FieldKind, value: &Value) -> String {
    match (kind, value) {
        (FieldKind::Bool, Value::Bool(true)) => "yes".into(),
        (FieldKind::Bool, Value::Bool(false)) => "no".into(),
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

/// The synthesis from the record alone: what was reported (every collected field), what is missing,
/// and the next action the record calls for. Used as is when the model is not asked or fails.
pub fn synthesis_from_record(claim: &Claim, schema: &ClaimSchema, actions: &[Action]) -> Synthesis {
    let missing = claim.missing(schema);
    let value = |kind: EntityKind| {
        schema
            .fields
            .iter()
            .find(|f| f.entity_kind() == Some(kind))
            .and_then(|f| claim.values.get(&f.name))
            .and_then(Value::as_str)
    };
    let transferred = actions
        .iter()
        .any(|a| matches!(a, Action::TransferToHuman { .. }));
    let short_summary = if claim.values.is_empty() {
        if transferred {
            "Call transferred to a person before any claim details were collected.".to_owned()
        } else {
            "Call without claim details collected.".to_owned()
        }
    } else {
        let who = value(EntityKind::PersonName).unwrap_or("The caller");
        let what = value(EntityKind::Description)
            .map(|d| format!(": {}", d.trim_end_matches('.')))
            .unwrap_or_default();
        let mut line = format!("{who} reported a claim{what}");
        if line.chars().count() > 117 {
            line = line.chars().take(116).collect::<String>() + "…";
        }
        line.push('.');
        line
    };
    let collected: Vec<String> = schema
        .fields
        .iter()
        .filter_map(|f| {
            claim.values.get(&f.name).map(|v| {
                format!(
                    "{}: {}",
                    f.description.to_lowercase(),
                    value_text(&f.kind, v)
                )
            })
        })
        .collect();
    let next_action = reconcile(NextAction::FollowUp, &missing, actions);
    let long_summary = format!(
        "Collected: {}. Missing: {}. Next: {}.",
        if collected.is_empty() {
            "nothing".to_owned()
        } else {
            collected.join("; ")
        },
        if missing.is_empty() {
            "nothing".to_owned()
        } else {
            missing.join(", ")
        },
        match next_action {
            NextAction::HumanCallback => "a person calls the caller back",
            NextAction::FollowUp => "a claims handler follows up",
            NextAction::CaseClosed => "nothing",
            NextAction::CommercialOffer => "an offer to the caller",
        }
    );
    let improvement = if missing.is_empty() {
        String::new()
    } else {
        format!("Collect the missing details: {}.", missing.join(", "))
    };
    Synthesis {
        short_summary,
        long_summary,
        satisfaction: 3,
        improvement,
        next_action,
    }
}

/// The model's proposal, overruled where the call's record says otherwise.
fn reconcile(proposed: NextAction, missing: &[&str], actions: &[Action]) -> NextAction {
    if actions
        .iter()
        .any(|a| matches!(a, Action::TransferToHuman { .. }))
    {
        return NextAction::HumanCallback;
    }
    if !missing.is_empty() && proposed == NextAction::CaseClosed {
        return NextAction::FollowUp;
    }
    proposed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_model_the_record_still_gives_a_synthesis() {
        let schema = ClaimSchema::default();
        let mut claim = Claim::default();
        claim
            .values
            .insert("callback_phone".into(), serde_json::json!("+14155550100"));
        let s = synthesis_from_record(&claim, &schema, &[]);
        assert_eq!(s.short_summary, "The caller reported a claim.");
        assert!(s.long_summary.contains("+14155550100"), "{s:?}");
        assert!(s.long_summary.contains("Missing: caller_name"), "{s:?}");
        assert_eq!(s.next_action, NextAction::FollowUp);
        let transfer = [Action::TransferToHuman {
            reason: "asked".into(),
        }];
        assert_eq!(
            synthesis_from_record(&claim, &schema, &transfer).next_action,
            NextAction::HumanCallback
        );
    }

    #[test]
    fn the_summary_states_only_what_the_claim_holds() {
        let schema = ClaimSchema::default();
        let mut claim = Claim::default();
        for (field, value) in [
            ("caller_name", serde_json::json!("Ana Lopez")),
            (
                "incident_description",
                serde_json::json!("Someone rear-ended me at a red light"),
            ),
            ("injuries", serde_json::json!(false)),
        ] {
            claim.values.insert(field.into(), value);
        }
        let s = synthesis_from_record(&claim, &schema, &[]);
        assert_eq!(
            s.short_summary,
            "Ana Lopez reported a claim: Someone rear-ended me at a red light."
        );
        assert!(
            s.long_summary.contains("whether anyone was injured: no"),
            "{s:?}"
        );
    }

    #[test]
    fn a_sentence_with_words_the_caller_did_not_say_is_not_kept() {
        let said: Vec<String> =
            span_words("Someone rear-ended me while I was stopped at a red light.")
                .iter()
                .map(|w| w.to_lowercase())
                .collect();
        assert!(grounded(
            "Someone rear-ended the caller at a red light",
            &said
        ));
        assert!(!grounded(
            "I'm Agent Ana, I'm a insurance claims line",
            &said
        ));
        assert!(!grounded("", &said));
    }

    #[test]
    fn the_record_overrules_the_model() {
        let transfer = [Action::TransferToHuman {
            reason: "asked".into(),
        }];
        assert_eq!(
            reconcile(NextAction::CaseClosed, &[], &transfer),
            NextAction::HumanCallback
        );
        assert_eq!(
            reconcile(NextAction::CaseClosed, &["email"], &[]),
            NextAction::FollowUp
        );
        assert_eq!(
            reconcile(NextAction::CommercialOffer, &[], &[]),
            NextAction::CommercialOffer
        );
    }
}
