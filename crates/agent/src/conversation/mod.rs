//! One call's conversation: each caller turn is read (entities, intent, claim facts), the claim updated,
//! the tools the turn calls for acted on, and an answer streamed back sentence by sentence.
//!
//! The flow suits models of every size. Facts reach the claim through the parsers and a schema-constrained
//! extraction, which even a 135M-parameter model gets right; engines with a real tool API (Ollama, OpenAI)
//! are offered the tools as well and may call them while answering. Every tool call is validated before it
//! acts, and what the caller is told is steered by the state of the claim: which field to ask for next,
//! when to transfer, when to say goodbye.

use std::sync::Arc;

use chrono::NaiveDate;
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_llm::ChatModel;

use crate::claim::Claim;
use crate::config::AgentConfig;
use crate::dialogue::{Dialogue, acknowledgement, guided_reply};
use crate::entities::Entities;
use crate::facts::{Proposal, TurnContext, Weight};
use crate::knowledge::{KnowledgeSearch, Passage};
use crate::memory::Memory;
use crate::prompt::{AskTurn, Instruction};
use crate::tools::Action;
use crate::understanding::{LateFact, Turn, understand};

mod answer;
mod intent;
mod keys;

pub use intent::{UNLABELLED_QUESTION_SCORE, document_question};
use intent::{action_cued, confirmed, intent_matters};

/// What the agent knows about the call before it starts.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The day of the call (relative dates, reminders).
    pub today: Option<NaiveDate>,
    /// The caller's number, when the line gives it.
    pub caller_phone: Option<String>,
    /// What happened on this caller's earlier calls, newest first.
    pub previous_calls: Vec<PreviousCall>,
}

/// An earlier call of the same caller, as context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousCall {
    /// When (`YYYY-MM-DD`).
    pub date: String,
    /// Its short summary.
    pub summary: String,
}

/// What one caller turn produced.
#[derive(Debug, Clone, Default)]
pub struct TurnOutcome {
    /// What the agent said (also streamed while it was generated).
    pub reply: String,
    /// The caller's intent, when recognised.
    pub intent: Option<String>,
    /// Entities in the caller's words.
    pub entities: Entities,
    /// Claim fields set this turn, normalised.
    pub claim_updates: Vec<(String, Value)>,
    /// Values or tool calls refused, with the reason.
    pub refused: Vec<String>,
    /// What the call must do beyond speaking: transfer, hang up, text, switch language. Claim updates,
    /// reminders and searches are done already and listed here too, for the record.
    pub actions: Vec<Action>,
    /// Passages the answer drew on, to cite in the transcript.
    pub citations: Vec<Passage>,
    /// A language-model failure this turn (the call went on with what was left).
    pub llm_error: Option<String>,
    /// The field the answer asked for, if it asked for one.
    pub asked: Option<String>,
    /// The field asked for is answered letter by letter or digit by digit (a name, a policy or phone
    /// number, an e-mail address): the caller's answer is worth the more accurate recogniser.
    pub spelled_answer: bool,
    /// How long the turn waited on the model before answering (at most the model budget); zero when
    /// the model was not asked.
    pub model_wait: std::time::Duration,
    /// The reply's words were written by the model (an answer from the documents, or every reply with
    /// native tools), not said from fixed words.
    pub generated: bool,
}

/// Said when no engine could answer: the call goes on and the caller can repeat.
const APOLOGY: &str = "I'm sorry, I didn't catch that. Could you say it again?";

/// The conversation of one call.
///
/// A copy is a draft: it answers a turn without touching the original, so a turn can be answered while
/// the end of it is still being confirmed and the copy kept only if the caller said no more (the model
/// and the documents are shared, everything the turn changes is the copy's own).
#[derive(Clone)]
pub struct Conversation {
    model: Arc<dyn ChatModel>,
    knowledge: Option<Arc<dyn KnowledgeSearch>>,
    config: Arc<AgentConfig>,
    context: CallContext,
    today: NaiveDate,
    claim: Claim,
    memory: Memory,
    language: String,
    native_tools: bool,
    dialogue: Dialogue,
    /// Model extractions still running from earlier turns.
    late: Vec<LateFact>,
    last_agent: String,
    tool_log: Vec<Action>,
}

/// The opening line of a call. Callers are told at once that they speak with an automated agent and
/// that the call is transcribed, and, when calls are recorded with RECORDING=announce, that it is
/// recorded and that they may say they do not want it.
pub fn greeting_text(config: &AgentConfig) -> String {
    let persona = &config.persona;
    if config.announce_recording {
        return format!(
            "Thank you for calling {}. This is {}, an automated assistant. This call is recorded and transcribed; if you would rather it were not recorded, just say so. How can I help you today?",
            persona.company, persona.agent_name
        );
    }
    format!(
        "Thank you for calling {}. This is {}, an automated assistant, and this call is transcribed. How can I help you today?",
        persona.company, persona.agent_name
    )
}

impl std::fmt::Debug for Conversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversation")
            .field("model", &self.model.name())
            .field("claim", &self.claim)
            .field("turns", &self.memory.turns())
            .finish()
    }
}

impl Conversation {
    /// A new call's conversation. `native_tools` offers the tools through the engine's tool API (for
    /// models that use one well); the claim is filled by extraction either way.
    pub fn new(
        model: Arc<dyn ChatModel>,
        knowledge: Option<Arc<dyn KnowledgeSearch>>,
        config: AgentConfig,
        context: CallContext,
        native_tools: bool,
    ) -> Self {
        let today = context
            .today
            .unwrap_or_else(|| chrono::Local::now().date_naive());
        let memory = Memory::new(config.memory_turns);
        let language = config.persona.language.clone();
        Self {
            model,
            knowledge,
            config: Arc::new(config),
            context,
            today,
            claim: Claim::default(),
            memory,
            language,
            native_tools,
            dialogue: Dialogue::default(),
            late: Vec::new(),
            last_agent: String::new(),
            tool_log: Vec::new(),
        }
    }

    /// The first thing the agent says (fixed, so the phrase cache can serve it).
    pub fn greeting(&mut self) -> String {
        let text = greeting_text(&self.config);
        self.last_agent = text.clone();
        text
    }

    /// The claim so far.
    pub fn claim(&self) -> &Claim {
        &self.claim
    }

    /// Every tool action taken so far, in order.
    pub fn actions(&self) -> &[Action] {
        &self.tool_log
    }

    /// The language the call is in now.
    pub fn language(&self) -> &str {
        &self.language
    }

    /// Caller turns so far.
    pub fn turns(&self) -> usize {
        self.memory.turns()
    }

    /// The configuration the conversation runs with.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The caller cut the last answer off, and heard only `heard` of it. When that holds no question
    /// (the answer's question is its last sentence), the question was never asked: the next turn is not
    /// read as its answer, and the field is asked for afresh, not "Sorry, I didn't catch …".
    pub fn answer_cut(&mut self, heard: &str) {
        if !heard.contains(['?', '？']) {
            tracing::debug!("the caller cut the answer off before its question");
            self.dialogue.question_unheard();
        }
    }

    /// Answers one caller turn. Text is passed to `on_text` as it is generated (for speech); the outcome
    /// has all of it and what the turn did.
    pub async fn respond(
        &mut self,
        caller_said: &str,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> TurnOutcome {
        self.respond_citing(caller_said, on_text, &mut |_| {}).await
    }

    /// As [`Conversation::respond`], and tells `on_sources` which passages of the company's documents
    /// the answer is made from before its first word is generated, so that an answer the caller cuts
    /// off part way is still recorded with its sources. (With a model that searches by its own tool
    /// call, the passages come in the outcome only.)
    pub async fn respond_citing(
        &mut self,
        caller_said: &str,
        on_text: &mut (dyn FnMut(&str) + Send),
        on_sources: &mut (dyn FnMut(&[Passage]) + Send),
    ) -> TurnOutcome {
        let mut outcome = TurnOutcome::default();
        let mut captured: Vec<(String, Value)> = Vec::new();
        self.merge_late(&mut outcome, &mut captured);
        // A question the documents answer well enough is found first: such a turn needs no label from
        // the model (the label's only use would be a lower bar for the same search) and no span of the
        // caller's words for the field last asked about, about 1.2 s of waiting on the embedded model.
        let answered = self.question_found(caller_said, &mut outcome);
        let label_needed = answered.is_none()
            && intent_matters(&self.config, self.knowledge.is_some(), caller_said);
        // The letters of the identifier asked for came on their own last turn: these words follow them.
        let identifier = self.identifier_asked();
        let held = self
            .dialogue
            .letters_heard
            .take()
            .filter(|_| identifier.is_some());
        let with_letters = held
            .as_ref()
            .map(|letters| format!("{letters} {caller_said}"));
        let turn = Turn {
            asked: self.dialogue.asked.as_deref(),
            agent_said: &self.last_agent,
            caller_said: with_letters.as_deref().unwrap_or(caller_said),
            context: TurnContext {
                today: self.today,
                country_code: &self.config.country_code,
                caller_phone: self.context.caller_phone.as_deref(),
                asked: self.dialogue.asked.as_deref(),
            },
            label_needed,
            answered_from_documents: answered.is_some(),
        };
        let (understanding, error) = understand(&self.model, &self.config, &turn).await;
        if let Some(error) = error {
            outcome.llm_error = Some(error.to_string());
        }
        outcome.model_wait = understanding.model_wait;
        outcome.intent = understanding.intent.clone();
        outcome.entities = understanding.entities.clone();
        self.late.extend(understanding.late.clone());
        let reopened =
            self.dialogue
                .reopen_rejected(&mut self.claim, caller_said, &understanding.proposals);
        for proposal in &understanding.proposals {
            self.take(proposal, &mut outcome, &mut captured);
        }
        self.dialogue
            .note_declined(&self.config.claim_schema, &self.claim, caller_said);
        // The caller read the identifier's letters and paused before its digits: they are told what was
        // heard and the digits are awaited, rather than the question asked again.
        if let Some(field) = identifier
            && held.is_none()
            && !self.claim.values.contains_key(&field)
            && let Some(letters) = crate::facts::letters_only(caller_said)
        {
            let said: Vec<String> = letters.chars().map(String::from).collect();
            let reply = format!("{}, and then?", said.join(", "));
            self.dialogue.letters_heard = Some(letters);
            on_text(&reply);
            outcome.asked = Some(field);
            self.memory.push(caller_said, &reply);
            self.last_agent.clone_from(&reply);
            outcome.reply = reply;
            return outcome;
        }

        // An action the intent calls for (a transfer, hanging up) is taken only when the caller's words
        // carry one of its cue words too: a small model's label alone is not reason enough to hang up.
        let intent = outcome
            .intent
            .clone()
            .filter(|i| confirmed(&self.config, i, caller_said));
        let instruction = match reopened.clone() {
            Some(field) => {
                let spec = self
                    .config
                    .claim_schema
                    .fields
                    .iter()
                    .find(|f| f.name == field);
                Instruction::Ask {
                    description: spec.map(|f| f.description.clone()).unwrap_or_default(),
                    field,
                    turn: AskTurn::Again,
                }
            }
            None => match answered {
                // Unless the caller asked for a person (which needs no label).
                Some(question) if intent.as_deref() != Some("speak_to_human") => {
                    self.answer_from_documents(&question, &mut outcome)
                }
                _ => self.instruction(
                    caller_said,
                    intent.as_deref(),
                    !captured.is_empty(),
                    &mut outcome,
                ),
            },
        };
        let ack = match &instruction {
            Instruction::Ask {
                turn: AskTurn::Again,
                ..
            } if reopened.is_some() => Some("Sorry about that.".to_owned()),
            _ => None,
        };
        match &instruction {
            Instruction::Answer { passages } => on_sources(passages),
            Instruction::Quote { quote, .. } => on_sources(std::slice::from_ref(&quote.passage)),
            // Passages found by a search whose answer the turn does not give (the caller asked for a
            // person too) are not its sources.
            _ => outcome.citations.clear(),
        }
        self.say(caller_said, instruction, &captured, ack, outcome, on_text)
            .await
    }

    /// Says what `instruction` calls for, after acknowledging what was `captured` (or with `ack`
    /// instead), and keeps the turn in memory.
    async fn say(
        &mut self,
        caller_said: &str,
        instruction: Instruction,
        captured: &[(String, Value)],
        ack: Option<String>,
        mut outcome: TurnOutcome,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> TurnOutcome {
        let (said_back, read_back) = acknowledgement(&self.config.claim_schema, captured);
        let ack = ack.unwrap_or(said_back);
        let reply = match guided_reply(&self.config, &instruction, &ack, self.native_tools) {
            Some(text) => {
                on_text(&text);
                Ok(text)
            }
            None => {
                outcome.generated = true;
                self.reply(caller_said, &instruction, &mut outcome, on_text)
                    .await
            }
        };
        let reply = match reply {
            Ok(text) if !text.trim().is_empty() => text,
            Ok(_) => {
                on_text(APOLOGY);
                APOLOGY.to_owned()
            }
            Err(error) => {
                outcome.llm_error = Some(error.to_string());
                on_text(APOLOGY);
                APOLOGY.to_owned()
            }
        };
        self.dialogue
            .answered(&self.config.claim_schema, &instruction, read_back);
        if let Instruction::Ask { field, .. } = instruction.last() {
            outcome.asked = Some(field.clone());
            outcome.spelled_answer = self
                .config
                .claim_schema
                .fields
                .iter()
                .find(|spec| &spec.name == field)
                .is_some_and(crate::claim::FieldSpec::answered_spelled);
        }
        self.memory.push(caller_said, &reply);
        self.last_agent = reply.clone();
        outcome.reply = reply;
        outcome
    }

    /// The field last asked for.
    fn asked_field(&self) -> Option<&crate::claim::FieldSpec> {
        let asked = self.dialogue.asked.as_deref()?;
        self.config
            .claim_schema
            .fields
            .iter()
            .find(|f| f.name == asked)
    }

    /// The field last asked for, when it is an identifier of letters then digits (a policy number).
    fn identifier_asked(&self) -> Option<String> {
        self.asked_field()
            .filter(|f| f.entity_kind() == Some(crate::claim::EntityKind::PolicyNumber))
            .map(|f| f.name.clone())
    }

    /// Stores what a proposal says when the dialogue takes it (see `Dialogue::value_to_store`).
    fn take(
        &mut self,
        proposal: &Proposal,
        outcome: &mut TurnOutcome,
        captured: &mut Vec<(String, Value)>,
    ) {
        let Some(spec) = self
            .config
            .claim_schema
            .fields
            .iter()
            .find(|f| f.name == proposal.field)
            .cloned()
        else {
            return;
        };
        let Some(value) = self.dialogue.value_to_store(&self.claim, &spec, proposal) else {
            return;
        };
        let was_empty = !self.claim.values.contains_key(&spec.name);
        let before = outcome.claim_updates.len();
        self.apply(
            Action::UpdateClaim {
                field: proposal.field.clone(),
                value,
            },
            outcome,
        );
        if let Some((field, stored)) = outcome.claim_updates.get(before).cloned() {
            self.dialogue.stored(&field, proposal.weight, was_empty);
            captured.push((field, stored));
        }
    }

    /// Model extractions of earlier turns that have come in since: each fills its field if it is still
    /// empty.
    fn merge_late(&mut self, outcome: &mut TurnOutcome, captured: &mut Vec<(String, Value)>) {
        let mut still = Vec::new();
        for late in std::mem::take(&mut self.late) {
            match late.clone().now_or_never() {
                Some(Some((field, value))) if !self.claim.values.contains_key(&field) => {
                    let proposal = Proposal {
                        field,
                        value,
                        weight: Weight::Volunteered,
                    };
                    self.take(&proposal, outcome, captured);
                }
                Some(_) => {}
                None => still.push(late),
            }
        }
        self.late = still;
    }

    /// For a model without a tool API: the line's question, when a passage answers it closely enough
    /// ([`UNLABELLED_QUESTION_SCORE`]); the passages are then the turn's citations. `None` when the line
    /// asks nothing of the documents, could be a transfer or a hang-up, or no passage is close enough.
    fn question_found(&mut self, caller_said: &str, outcome: &mut TurnOutcome) -> Option<String> {
        if self.knowledge.is_none() || self.native_tools || action_cued(&self.config, caller_said) {
            return None;
        }
        let question = document_question(caller_said)?;
        self.search_with(&question, UNLABELLED_QUESTION_SCORE, outcome);
        (!outcome.citations.is_empty()).then_some(question)
    }

    /// The answer to `question` from the passages found (the turn's citations): in the passage's own
    /// words for a model without a tool API (the embedded one, too small to answer from them
    /// truthfully), which then cites only the passage quoted; else generated from them.
    fn answer_from_documents(&self, question: &str, outcome: &mut TurnOutcome) -> Instruction {
        if !self.native_tools
            && let Some(quote) = crate::quote::quote(question, &outcome.citations)
        {
            outcome.citations = vec![quote.passage.clone()];
            // The claim goes on: the question for the next field still missing follows, never as asked
            // again (`captured`: the caller asked something, they did not fail to answer).
            let then = match self
                .dialogue
                .next(&self.config.claim_schema, &self.claim, true)
            {
                ask @ Instruction::Ask { .. } => Some(Box::new(ask)),
                _ => None,
            };
            return Instruction::Quote { quote, then };
        }
        Instruction::Answer {
            passages: outcome.citations.clone(),
        }
    }

    /// What the answer must do this turn, deciding the actions the intent calls for.
    fn instruction(
        &mut self,
        caller_said: &str,
        intent: Option<&str>,
        captured: bool,
        outcome: &mut TurnOutcome,
    ) -> Instruction {
        match intent {
            Some("speak_to_human") => {
                self.apply(
                    Action::TransferToHuman {
                        reason: format!("caller asked for a person: {caller_said}"),
                    },
                    outcome,
                );
                return Instruction::Transfer;
            }
            Some("goodbye") => {
                // A required field still missing is asked for once before the caller goes.
                if let Some(last) = self
                    .dialogue
                    .before_goodbye(&self.config.claim_schema, &self.claim)
                {
                    return last;
                }
                self.apply(
                    Action::EndCall {
                        reason: "caller said goodbye".into(),
                    },
                    outcome,
                );
                return Instruction::Goodbye;
            }
            Some("coverage_question" | "claim_status") if self.knowledge.is_some() => {
                self.apply(
                    Action::SearchDocuments {
                        query: caller_said.to_owned(),
                    },
                    outcome,
                );
                if !outcome.citations.is_empty() {
                    return self.answer_from_documents(caller_said, outcome);
                }
            }
            // A question not labelled for the documents was searched alone before the turn was read
            // (`question_found`); nothing close enough was found.
            _ => {}
        }
        self.dialogue
            .next(&self.config.claim_schema, &self.claim, captured)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_greeting_says_an_automated_assistant_answers_and_the_call_is_transcribed() {
        let greeting = greeting_text(&AgentConfig::default()).to_lowercase();
        assert!(greeting.contains("automated assistant"), "{greeting}");
        assert!(greeting.contains("transcribed"), "{greeting}");
        assert!(!greeting.contains("recorded"), "{greeting}");
        assert!(greeting.starts_with("thank you for calling"), "{greeting}");
        let announced = greeting_text(&AgentConfig {
            announce_recording: true,
            ..AgentConfig::default()
        })
        .to_lowercase();
        assert!(
            announced.contains("recorded and transcribed"),
            "{announced}"
        );
        assert!(announced.contains("say so"), "{announced}");
    }
}
