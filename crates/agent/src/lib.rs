//! The conversation of one call: what the agent is told, what it remembers, the tools it may use and the
//! claim it fills.
//!
//! A [`Conversation`] takes caller turns and streams answers. Each turn is read by deterministic entity
//! parsers (phones, e-mails, dates, amounts, policy numbers) and a schema-constrained extraction by the
//! language model (intent, free-text facts); the claim is updated through typed, validated fields; tools
//! (transfer, end call, reminders, document search, SMS, language) are validated before they act; and
//! the answer's prompt is kept bounded by a memory of recent turns plus a running summary. After the call,
//! [`synthesize`] writes the summary record. PII masking serves logs and stored transcripts.

pub mod claim;
pub mod config;
pub mod conversation;
pub mod entities;
pub mod knowledge;
pub mod memory;
mod numbers;
pub mod pii;
pub mod prompt;
pub mod scenario;
pub mod synthesis;
pub mod tools;
pub mod understanding;

pub use claim::{Claim, ClaimError, ClaimSchema, EntityKind, FieldContext, FieldKind, FieldSpec};
pub use config::{AgentConfig, AgentConfigError, Persona};
pub use conversation::{
    CallContext, Conversation, PreviousCall, Reminder, TurnOutcome, fixed_replies, greeting_text,
};
pub use entities::{Amount, Entities, extract};
pub use knowledge::{
    DocumentError, Hit, KnowledgeSearch, Passage, VectorIndex, chunk_text, read_document,
};
pub use pii::{PiiKind, mask_pii};
pub use scenario::{Scenario, ScenarioReport, run_scenario};
pub use synthesis::{NextAction, Synthesis, synthesis_from_record, synthesize};
pub use tools::{Action, tool_specs};
