//! The conversation of one call: what the agent is told, what it remembers, the tools it may use and the
//! claim it fills. This crate starts with what the rest leans on: deterministic entity parsers for what callers
//! say (phones, e-mails, dates, amounts, policy numbers) and PII masking for logs and stored transcripts.

pub mod claim;
pub mod entities;
mod numbers;
pub mod pii;

pub use claim::{Claim, ClaimError, ClaimSchema, FieldContext, FieldKind, FieldSpec};
pub use entities::{Amount, Entities, extract};
pub use pii::{PiiKind, mask_pii};
