//! The system of record. SQLite in DATA_DIR by default, PostgreSQL when configured; both run the same
//! migrations through sqlx's `Any` driver, so every query here is written once in portable SQL.

mod access;
mod calls;
mod db;
mod error;
mod knowledge;
mod live;
mod recordings;
mod retention;
mod sealed;
mod spool;
mod summaries;

pub use access::{ApiKeyRecord, AuditEntry};
pub use calls::{CallFilter, CallRecord, NewCall, TurnRecord, TurnSource};
pub use db::{Backend, Database, MigrationState};
pub use error::StoreError;
pub use knowledge::{ChunkRecord, DocumentRecord, NewDocument};
pub use live::{
    CallCommand, CommandListener, Delivery, EVENTS_STREAM, EventFollower, LIVE_CALLS_KEY,
    LiveState, command_channel,
};
pub use recordings::Recording;
pub use retention::Erased;
pub use sealed::{DataKeyError, DataKeys, new_key_line};
pub use spool::{Drained, MAX_BYTES as SPOOL_MAX_BYTES, SpooledCall, SpooledEnd, SpooledLine};
pub use summaries::{CallSummary, PastCall};
