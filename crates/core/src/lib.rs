//! Switchboard's shared vocabulary: identifiers, the validated configuration every other crate reads, and
//! the node's one queue for model computations.
//!
//! Nothing here touches the network or the database; the only I/O is reading `config.yaml` when asked.

pub mod call;
pub mod compute;
pub mod config;
pub mod ids;
pub mod secret;

pub use call::{CallDirection, Speaker};
pub use config::{Config, ConfigError};
pub use ids::CallId;
pub use secret::Secret;
