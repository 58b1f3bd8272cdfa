//! The post-call synthesis stored with the call: short and long summary, the caller's satisfaction,
//! what the agent could have done better, and the next action. The model writes it under a JSON schema,
//! so the stored record always has every field in range; the next action it proposes is checked
//! against what the call actually did (a transferred call needs a human callback whatever it says).

use serde::{Deserialize, Serialize};
use serde_json::json;
use switchboard_llm::{ChatModel, ChatRequest, LlmError, Message};

use crate::claim::{Claim, ClaimSchema};
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

/// Tokens for the synthesis: its strings at their longest (120 + 199 + 100 characters), the rest of
/// the JSON, and a margin.
const SYNTHESIS_MAX_TOKENS: u32 = 520;

/// Writes the synthesis of a call from its transcript (`(speaker, text)` pairs) and the claim.
pub async fn synthesize(
    model: &dyn ChatModel,
    transcript: &[(String, String)],
    claim: &Claim,
    schema: &ClaimSchema,
    actions: &[Action],
) -> Result<Synthesis, LlmError> {
    let mut conversation = String::new();
    for (speaker, text) in transcript {
        conversation.push_str(&format!("{speaker}: {text}\n"));
    }
    let missing = claim.missing(schema);
    let facts = serde_json::to_string(&claim.values).unwrap_or_default();
    let request = ChatRequest {
        messages: vec![
            Message::system(
                "You review a finished phone call of an insurance claims line and write JSON: \
                 short_summary (one sentence), long_summary (three sentences), satisfaction (1 to 5), \
                 improvement (one sentence on what the agent could do better), next_action.",
            ),
            Message::user(format!(
                "Transcript:\n{conversation}\nClaim: {facts}\nMissing fields: {}",
                if missing.is_empty() {
                    "none".to_owned()
                } else {
                    missing.join(", ")
                }
            )),
        ],
        tools: Vec::new(),
        temperature: None,
        // Room for every field at its longest even at one character per token: a small model that runs
        // away inside a string is cut by the lengths below, not by the token limit, which would leave
        // broken JSON.
        max_tokens: Some(SYNTHESIS_MAX_TOKENS),
        response_schema: Some(json!({
            "type": "object",
            "properties": {
                "short_summary": {"type": "string", "maxLength": 120},
                "long_summary": {"type": "string", "maxLength": 199},
                "satisfaction": {"enum": [1, 2, 3, 4, 5]},
                "improvement": {"type": "string", "maxLength": 100},
                "next_action": {"enum": ["case_closed", "follow_up", "human_callback", "commercial_offer"]},
            },
            "required": ["short_summary", "long_summary", "satisfaction", "improvement", "next_action"],
        })),
        background: true,
    };
    let answer = complete(model, &request).await?;
    let engine = model.name().to_owned();
    let value = switchboard_llm::lenient::parse_arguments(&answer).map_err(|detail| {
        LlmError::Protocol {
            engine: engine.clone(),
            detail: format!("synthesis: {detail}"),
        }
    })?;
    let mut synthesis: Synthesis =
        serde_json::from_value(value).map_err(|e| LlmError::Protocol {
            engine,
            detail: format!("synthesis: {e}"),
        })?;
    synthesis.satisfaction = synthesis.satisfaction.clamp(1, 5);
    synthesis.next_action = reconcile(synthesis.next_action, &missing, actions);
    Ok(synthesis)
}

/// A synthesis written from the record alone, for when the model could not write one: what was collected,
/// what is missing, and the next action the record calls for. Satisfaction is the neutral 3 (unknown).
pub fn synthesis_from_record(claim: &Claim, schema: &ClaimSchema, actions: &[Action]) -> Synthesis {
    let missing = claim.missing(schema);
    let collected: Vec<&str> = claim.values.keys().map(String::as_str).collect();
    let short_summary = if collected.is_empty() {
        "Call without claim details collected.".to_owned()
    } else {
        format!("Claim details collected: {}.", collected.join(", "))
    };
    let long_summary = format!(
        "{short_summary} Missing: {}. Written from the call record; the model's synthesis was not available.",
        if missing.is_empty() {
            "nothing".to_owned()
        } else {
            missing.join(", ")
        }
    );
    Synthesis {
        short_summary,
        long_summary,
        satisfaction: 3,
        improvement: String::new(),
        next_action: reconcile(NextAction::CaseClosed, &missing, actions),
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
        assert!(s.short_summary.contains("callback_phone"), "{s:?}");
        assert!(s.long_summary.contains("caller_name"), "{s:?}");
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
