//! The conversation of one call: what the agent is told, what it remembers, the tools it may use and the
//! claim it fills.
//!
//! A [`Conversation`] takes caller turns and streams answers. Every turn is read for every claim field by
//! typed readers ([`facts`]: names, identifiers, phones, e-mails, dates, places, yes/no facts, damaged
//! things, the story); the language model only labels intents and picks a span for an asked field the
//! readers missed, within a time budget; a dialogue policy acknowledges, reads back identifiers, and
//! asks for the first field still missing; the claim is updated through typed, validated fields; tools
//! (the claim, transfer, end call, and document search when there are documents; nothing else is offered)
//! are validated before they act; and
//! the answer's prompt is kept bounded by a memory of recent turns plus a running summary. After the call,
//! [`synthesize`] writes the summary record. PII masking serves logs and stored transcripts.

pub mod call_score;
pub mod claim;
pub mod config;
pub mod conversation;
mod dialogue;
pub mod entities;
pub mod facts;
pub mod knowledge;
pub mod memory;
mod numbers;
pub mod pii;
pub mod prompt;
pub mod quote;
pub mod scenario;
pub mod synthesis;
pub mod tools;
pub mod understanding;

pub use call_score::{CallScore, score_call};
pub use claim::{Claim, ClaimError, ClaimSchema, EntityKind, FieldContext, FieldKind, FieldSpec};
pub use config::{AgentConfig, AgentConfigError, Persona};
pub use conversation::{
    CallContext, Conversation, PreviousCall, TurnOutcome, UNLABELLED_QUESTION_SCORE,
    document_question, greeting_text,
};
pub use dialogue::{asked_field, fixed_replies};
pub use entities::{Amount, Entities, extract};
pub use knowledge::{
    DocumentError, Hit, KnowledgeError, KnowledgeSearch, Passage, VectorIndex, chunk_text,
    read_document,
};
pub use pii::{MaskedModel, PiiKind, mask_pii};
pub use scenario::{Scenario, ScenarioReport, run_scenario};
pub use synthesis::{NextAction, Synthesis, synthesis_from_record, synthesize};
pub use tools::{Action, tool_specs};
