//! The dialogue policy of a claim call, as a caller recognises it from a good human agent: acknowledge
//! what was captured ("Got it. Main Street in Springfield."), read identifiers and numbers back so a
//! mistake can be corrected ("no, it's …"), ask next for the first field still missing, never ask again
//! for a field already given (only to correct it, or once for more detail when it was given in general
//! terms), rephrase with an example when an answer gave nothing, and ask once before goodbye for what is
//! still required when little is.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::claim::{Claim, ClaimSchema, EntityKind, FieldKind, FieldSpec};
use crate::facts::{Proposal, Weight, yes_or_no};
use crate::prompt::{AskTurn, Instruction};

mod words;
pub(crate) use words::{acknowledgement, guided_reply};
pub use words::{asked_field, fixed_replies};

/// Times the agent asks for a required field before moving on; optional fields are asked once.
const MAX_ASKS: u32 = 2;
/// Required fields still missing at goodbye that the agent asks for once more; with more missing, the
/// caller is let go and the call is followed up.
const LAST_CHANCE_FIELDS: usize = 2;
/// The longest description kept; later parts of the story are appended up to it.
const MAX_STORY: usize = 600;

/// What the dialogue remembers between turns.
#[derive(Debug, Clone, Default)]
pub(crate) struct Dialogue {
    /// The field the last question was about.
    pub asked: Option<String>,
    asks: HashMap<String, u32>,
    /// Fields whose value was given only in general terms.
    partial: BTreeSet<String>,
    /// Partial fields already asked about for more.
    more_asked: BTreeSet<String>,
    /// Optional fields the caller said they do not have ("I don't have e-mail").
    declined: BTreeSet<String>,
    /// The field read back in the last answer, which a "no" corrects.
    read_back: Option<String>,
    /// Whether the agent already asked for the missing fields before goodbye.
    asked_before_goodbye: bool,
    /// Whether the last answer ended on a yes/no question ("Was anyone injured?", "Anything else?").
    yes_no_question: bool,
    /// The letters of the identifier asked for, said on their own in the caller's last turn: the digits
    /// that follow are read after them.
    pub letters_heard: Option<String>,
}

/// Words of a rejection.
const REJECTION: &[&str] = &[
    "no",
    "nope",
    "that's",
    "that",
    "is",
    "it's",
    "its",
    "not",
    "wrong",
    "right",
    "correct",
    "incorrect",
    "sorry",
    "isn't",
    "mistake",
    "a",
];

/// Whether `text` only rejects what was read back ("No.", "No, that's wrong.", "That's not right"):
/// made of rejection words alone. "No email" or "No, that's all" say something else. `strong`: the
/// last question was a yes/no one, which a bare "no" answers, so it takes "wrong" or "not right".
fn rejects(text: &str, strong: bool) -> bool {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let negative = words
        .iter()
        .any(|w| ["no", "nope", "wrong", "incorrect", "not", "isn't"].contains(&w.as_str()));
    let bare = words.iter().all(|w| REJECTION.contains(&w.as_str()));
    let says_wrong = words
        .iter()
        .any(|w| ["wrong", "incorrect", "mistake"].contains(&w.as_str()))
        || text.to_lowercase().contains("not right")
        || text.to_lowercase().contains("not correct");
    !words.is_empty() && negative && bare && (!strong || says_wrong)
}

/// Words that decline an optional field: "I don't have one", "no e-mail".
fn declines(text: &str) -> bool {
    let lower = text.to_lowercase();
    [
        "don't have",
        "do not have",
        "haven't got",
        "no email",
        "no e-mail",
        "none",
        "rather not",
        "prefer not",
    ]
    .iter()
    .any(|cue| lower.contains(cue))
        || yes_or_no(text) == Some(false)
}

impl Dialogue {
    /// The value `proposal` should store, or `None` when the claim keeps what it has: a passing mention
    /// does not replace an answer; an answer or a correction does; a story told in parts is joined.
    pub(crate) fn value_to_store(
        &self,
        claim: &Claim,
        spec: &FieldSpec,
        proposal: &Proposal,
    ) -> Option<Value> {
        let Some(old) = claim.values.get(&spec.name) else {
            return Some(proposal.value.clone());
        };
        if spec.entity == Some(EntityKind::Description) {
            let (Some(old), Some(new)) = (old.as_str(), proposal.value.as_str()) else {
                return None;
            };
            if old.to_lowercase().contains(&new.to_lowercase()) {
                return None;
            }
            if new.to_lowercase().contains(&old.to_lowercase()) {
                return Some(Value::String(new.to_owned()));
            }
            let joined = format!("{}. {new}", old.trim_end_matches('.'));
            return (joined.len() <= MAX_STORY).then_some(Value::String(joined));
        }
        if old == &proposal.value {
            return None;
        }
        let partial = self.partial.contains(&spec.name);
        let takes = proposal.weight >= Weight::Answer
            || (partial && proposal.weight >= Weight::Volunteered);
        takes.then(|| proposal.value.clone())
    }

    /// Records that `field` was stored from a proposal of `weight`; `was_empty` says it had no value
    /// before (a general mention added to a full value leaves it full).
    pub(crate) fn stored(&mut self, field: &str, weight: Weight, was_empty: bool) {
        if weight != Weight::Partial {
            self.partial.remove(field);
        } else if was_empty {
            self.partial.insert(field.to_owned());
        }
    }

    /// Handles a "no" to the value read back last turn, when the turn gives no new value for it: the
    /// value is dropped and the field asked again. Returns the field reopened.
    pub(crate) fn reopen_rejected(
        &mut self,
        claim: &mut Claim,
        caller_said: &str,
        proposals: &[Proposal],
    ) -> Option<String> {
        let field = self.read_back.take()?;
        // A bare "no" answers a yes/no question when one was asked.
        if !rejects(caller_said, self.yes_no_question) || proposals.iter().any(|p| p.field == field)
        {
            return None;
        }
        claim.values.remove(&field);
        self.asks.remove(&field);
        Some(field)
    }

    /// Notes an optional field the caller declined when it was asked and nothing was given for it.
    pub(crate) fn note_declined(&mut self, schema: &ClaimSchema, claim: &Claim, caller_said: &str) {
        let Some(asked) = &self.asked else {
            return;
        };
        let optional = schema
            .fields
            .iter()
            .any(|f| &f.name == asked && !f.required && f.kind != FieldKind::Bool);
        if optional && !claim.values.contains_key(asked) && declines(caller_said) {
            self.declined.insert(asked.clone());
        }
    }

    fn asks(&self, field: &str) -> u32 {
        self.asks.get(field).copied().unwrap_or(0)
    }

    /// What to ask next: the first field still missing (or given only in general terms), in schema
    /// order. `captured` says whether this turn gave anything.
    pub(crate) fn next(&self, schema: &ClaimSchema, claim: &Claim, captured: bool) -> Instruction {
        for field in &schema.fields {
            if self.declined.contains(&field.name) {
                continue;
            }
            let turn = if !claim.values.contains_key(&field.name) {
                let limit = if field.required { MAX_ASKS } else { 1 };
                if self.asks(&field.name) >= limit {
                    continue;
                }
                let again = self.asked.as_deref() == Some(field.name.as_str()) && !captured;
                if again {
                    AskTurn::Again
                } else {
                    AskTurn::First
                }
            } else if self.partial.contains(&field.name) && !self.more_asked.contains(&field.name) {
                AskTurn::More
            } else {
                continue;
            };
            return Instruction::Ask {
                field: field.name.clone(),
                description: field.description.clone(),
                turn,
            };
        }
        Instruction::Wrap
    }

    /// Before goodbye: the first required field still missing, asked once per call, when the claim
    /// is nearly complete (at most [`LAST_CHANCE_FIELDS`] missing). A caller who leaves early is not held
    /// on the line; the synthesis records what is missing for a follow-up.
    pub(crate) fn before_goodbye(
        &mut self,
        schema: &ClaimSchema,
        claim: &Claim,
    ) -> Option<Instruction> {
        let missing = claim.missing(schema);
        if self.asked_before_goodbye || missing.len() > LAST_CHANCE_FIELDS {
            return None;
        }
        let first = *missing.first()?;
        let field = schema.fields.iter().find(|f| f.name == first)?;
        self.asked_before_goodbye = true;
        Some(Instruction::Ask {
            field: field.name.clone(),
            description: field.description.clone(),
            turn: AskTurn::BeforeGoodbye,
        })
    }

    /// The caller cut the last answer off before its question: that question was not asked. Their next
    /// words answer nothing in particular, and the field is asked for as for the first time.
    pub(crate) fn question_unheard(&mut self) {
        if let Some(field) = self.asked.take()
            && let Some(asks) = self.asks.get_mut(&field)
        {
            *asks = asks.saturating_sub(1);
        }
        self.yes_no_question = false;
    }

    /// Records what the answer did: which field it asked about and which value it read back.
    pub(crate) fn answered(
        &mut self,
        schema: &ClaimSchema,
        instruction: &Instruction,
        read_back: Option<String>,
    ) {
        let instruction = instruction.last();
        self.yes_no_question = match instruction {
            Instruction::Wrap => true,
            Instruction::Ask { field, .. } => schema
                .fields
                .iter()
                .any(|f| &f.name == field && f.kind == FieldKind::Bool),
            _ => false,
        };
        match instruction {
            Instruction::Ask { field, turn, .. } => {
                *self.asks.entry(field.clone()).or_default() += 1;
                if *turn == AskTurn::More {
                    self.more_asked.insert(field.clone());
                }
                self.asked = Some(field.clone());
            }
            _ => self.asked = None,
        }
        self.read_back = read_back;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> ClaimSchema {
        ClaimSchema::default()
    }

    fn proposal(field: &str, value: Value, weight: Weight) -> Proposal {
        Proposal {
            field: field.into(),
            value,
            weight,
        }
    }

    #[test]
    fn a_passing_mention_never_replaces_an_answer_but_a_correction_does() {
        let schema = schema();
        let spec = |n: &str| schema.fields.iter().find(|f| f.name == n).unwrap().clone();
        let mut dialogue = Dialogue::default();
        let mut claim = Claim::default();
        claim
            .values
            .insert("incident_location".into(), json!("a parking lot"));
        dialogue.stored("incident_location", Weight::Partial, true);
        let named = proposal(
            "incident_location",
            json!("the Westfield mall"),
            Weight::Volunteered,
        );
        assert_eq!(
            dialogue.value_to_store(&claim, &spec("incident_location"), &named),
            Some(json!("the Westfield mall"))
        );
        claim
            .values
            .insert("incident_location".into(), json!("the Westfield mall"));
        dialogue.stored("incident_location", Weight::Volunteered, false);
        let passing = proposal(
            "incident_location",
            json!("Main Street"),
            Weight::Volunteered,
        );
        assert_eq!(
            dialogue.value_to_store(&claim, &spec("incident_location"), &passing),
            None
        );
        let correction = proposal(
            "incident_location",
            json!("Main Street"),
            Weight::Correction,
        );
        assert!(
            dialogue
                .value_to_store(&claim, &spec("incident_location"), &correction)
                .is_some()
        );
        // The story is told in parts.
        claim
            .values
            .insert("incident_description".into(), json!("My bike was stolen"));
        let more = proposal(
            "incident_description",
            json!("the lock was cut"),
            Weight::Volunteered,
        );
        assert_eq!(
            dialogue.value_to_store(&claim, &spec("incident_description"), &more),
            Some(json!("My bike was stolen. the lock was cut"))
        );
    }

    #[test]
    fn the_next_question_is_the_first_field_missing_and_never_a_filled_one() {
        let schema = schema();
        let mut dialogue = Dialogue::default();
        let mut claim = Claim::default();
        claim
            .values
            .insert("caller_name".into(), json!("Ana Lopez"));
        claim
            .values
            .insert("incident_date".into(), json!("2026-11-27"));
        let Instruction::Ask { field, turn, .. } = dialogue.next(&schema, &claim, true) else {
            panic!("expected a question");
        };
        assert_eq!((field.as_str(), turn), ("policy_number", AskTurn::First));
        dialogue.answered(
            &schema,
            &Instruction::Ask {
                field: field.clone(),
                description: String::new(),
                turn,
            },
            None,
        );
        // Nothing given: asked again, rephrased; then never a third time.
        let next = dialogue.next(&schema, &claim, false);
        assert!(
            matches!(&next, Instruction::Ask { field, turn: AskTurn::Again, .. } if field == "policy_number")
        );
        dialogue.answered(&schema, &next, None);
        let next = dialogue.next(&schema, &claim, false);
        assert!(
            matches!(&next, Instruction::Ask { field, .. } if field == "incident_location"),
            "{next:?}"
        );
        // Before goodbye, once, for the required field still missing, when few are.
        assert!(
            dialogue.before_goodbye(&schema, &claim).is_none(),
            "five are missing"
        );
        for (field, value) in [
            ("incident_location", json!("Main Street")),
            ("incident_description", json!("rear-ended")),
            ("injuries", json!(false)),
            ("callback_phone", json!("+14155550134")),
        ] {
            claim.values.insert(field.into(), value);
        }
        let last = dialogue.before_goodbye(&schema, &claim);
        assert!(
            matches!(&last, Some(Instruction::Ask { field, turn: AskTurn::BeforeGoodbye, .. }) if field == "policy_number")
        );
        assert!(dialogue.before_goodbye(&schema, &claim).is_none());
    }

    #[test]
    fn a_no_after_a_read_back_reopens_the_field() {
        let schema = schema();
        let mut dialogue = Dialogue::default();
        let mut claim = Claim::default();
        claim
            .values
            .insert("policy_number".into(), json!("AB48213"));
        let ask_date = Instruction::Ask {
            field: "incident_date".into(),
            description: String::new(),
            turn: AskTurn::First,
        };
        dialogue.answered(&schema, &ask_date, Some("policy_number".into()));
        assert_eq!(
            dialogue.reopen_rejected(&mut claim, "No, that's wrong.", &[]),
            Some("policy_number".into())
        );
        assert!(!claim.values.contains_key("policy_number"));
        // "No, it's AB48218" carries the new value: nothing to reopen, the correction replaces it.
        claim
            .values
            .insert("policy_number".into(), json!("AB48213"));
        dialogue.answered(&schema, &ask_date, Some("policy_number".into()));
        let fix = [proposal(
            "policy_number",
            json!("AB48218"),
            Weight::Correction,
        )];
        assert_eq!(
            dialogue.reopen_rejected(&mut claim, "No, it's AB48218", &fix),
            None
        );
        // "Nobody was hurt" and "No email" are not rejections; after "anything else?", "No" is not.
        for line in ["Nobody was hurt.", "No email.", "No, that's all, goodbye."] {
            dialogue.answered(&schema, &ask_date, Some("policy_number".into()));
            assert_eq!(
                dialogue.reopen_rejected(&mut claim, line, &[]),
                None,
                "{line}"
            );
        }
        dialogue.answered(&schema, &Instruction::Wrap, Some("email".into()));
        assert_eq!(dialogue.reopen_rejected(&mut claim, "No.", &[]), None);
        dialogue.answered(&schema, &Instruction::Wrap, Some("policy_number".into()));
        assert_eq!(
            dialogue.reopen_rejected(&mut claim, "No, that's wrong.", &[]),
            Some("policy_number".into())
        );
    }

    #[test]
    fn what_was_captured_is_said_back() {
        let schema = schema();
        let (text, read) = acknowledgement(
            &schema,
            &[
                ("incident_location".into(), json!("Main Street")),
                ("incident_date".into(), json!("2026-11-28")),
                ("caller_name".into(), json!("Ana Lopez")),
            ],
        );
        assert_eq!(
            text,
            "Thank you, Ana. Saturday, November 28th, Main Street."
        );
        assert_eq!(read, None);
        let (text, read) = acknowledgement(&schema, &[("policy_number".into(), json!("AB48213"))]);
        assert_eq!(
            text,
            "Got it. I have your policy number as A, B, 4 8 2, 1 3."
        );
        assert_eq!(read.as_deref(), Some("policy_number"));
        let (text, _) = acknowledgement(&schema, &[("injuries".into(), json!(false))]);
        assert_eq!(text, "Got it. I'm glad nobody was hurt.");
        // A story with an injury in it: one word of sympathy, not two (heard in a spoken call).
        let (text, _) = acknowledgement(
            &schema,
            &[
                (
                    "incident_description".into(),
                    json!("the cyclist broke his wrist"),
                ),
                ("injuries".into(), json!(true)),
            ],
        );
        assert_eq!(text, "Got it. I'm sorry someone was hurt; I've noted it.");
    }

    #[test]
    fn optional_fields_the_caller_does_not_have_are_not_asked_again() {
        let schema = schema();
        let mut dialogue = Dialogue::default();
        let claim = Claim::default();
        dialogue.asked = Some("email".into());
        dialogue.note_declined(&schema, &claim, "I don't have email.");
        assert!(dialogue.declined.contains("email"));
    }
}
