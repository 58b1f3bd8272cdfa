//! Switchboard's shared vocabulary: identifiers and the validated configuration every other crate reads.
//!
//! Nothing here touches the network or the database; the only I/O is reading `config.yaml` when asked.

pub mod call;
pub mod config;
pub mod ids;
pub mod secret;

pub use call::{CallDirection, Speaker};
pub use config::{Config, ConfigError};
pub use ids::CallId;
pub use secret::Secret;
