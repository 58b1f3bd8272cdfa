//! Keys the caller typed on their phone's keypad: a number for the field just asked for, or the key that
//! hands them to a person. No model reads them: what was typed is what is stored.

use serde_json::Value;

use super::{Conversation, TurnOutcome};
use crate::claim::{EntityKind, FieldKind, FieldSpec};
use crate::facts::{Proposal, Weight};
use crate::prompt::{AskTurn, Instruction};
use crate::tools::Action;

/// Said when keys come while no number was asked for.
const NOT_ASKED: &str = "Thanks, but I wasn't asking for a number just then.";
/// Said when the number typed does not fit the field (a phone number too short).
const NOT_VALID: &str = "Sorry, that number doesn't look right.";

impl Conversation {
    /// Answers keys the caller typed (the digits of one entry, ended by `#` or a pause). The handover key
    /// alone hands the caller to a person. Digits typed while a field that takes a number was asked for
    /// (a phone number, a policy number, a number) fill it as typed; after the letters of a policy number
    /// the caller said, they complete it. Otherwise the agent says it was not asking for a number and
    /// goes on with its question.
    pub async fn respond_keys(
        &mut self,
        keys: &str,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> TurnOutcome {
        let mut outcome = TurnOutcome::default();
        let mut captured = Vec::new();
        self.merge_late(&mut outcome, &mut captured);
        let said = format!("(typed on the keypad) {keys}");
        if self
            .config
            .handover_key
            .is_some_and(|key| keys.len() == 1 && keys.starts_with(key))
        {
            self.apply(
                Action::TransferToHuman {
                    reason: "the caller pressed the key for a person".into(),
                },
                &mut outcome,
            );
            return self
                .say(
                    &said,
                    Instruction::Transfer,
                    &captured,
                    None,
                    outcome,
                    on_text,
                )
                .await;
        }
        let Some(spec) = self.keyed_field() else {
            let instruction =
                self.dialogue
                    .next(&self.config.claim_schema, &self.claim, !captured.is_empty());
            let ack = Some(NOT_ASKED.to_owned());
            return self
                .say(&said, instruction, &captured, ack, outcome, on_text)
                .await;
        };
        let letters = self.dialogue.letters_heard.take();
        let value = match letters {
            Some(letters) if spec.entity_kind() == Some(EntityKind::PolicyNumber) => {
                format!("{letters}{keys}")
            }
            _ => keys.to_owned(),
        };
        let proposal = Proposal {
            field: spec.name.clone(),
            value: Value::String(value),
            weight: Weight::Answer,
        };
        self.take(&proposal, &mut outcome, &mut captured);
        let (instruction, ack) = if self.claim.values.contains_key(&spec.name) {
            let next = self
                .dialogue
                .next(&self.config.claim_schema, &self.claim, true);
            (next, None)
        } else {
            let again = Instruction::Ask {
                description: spec.description.clone(),
                field: spec.name.clone(),
                turn: AskTurn::Again,
            };
            (again, Some(NOT_VALID.to_owned()))
        };
        self.say(&said, instruction, &captured, ack, outcome, on_text)
            .await
    }

    /// The field just asked for, when a keypad can answer it.
    fn keyed_field(&self) -> Option<FieldSpec> {
        self.asked_field()
            .filter(|f| {
                matches!(f.kind, FieldKind::Phone | FieldKind::Number)
                    || f.entity_kind() == Some(EntityKind::PolicyNumber)
            })
            .cloned()
    }
}
