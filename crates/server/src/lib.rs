//! Switchboard's HTTP edge. Today: liveness (`/health`), readiness (`/ready`) and a server that drains
//! in-flight work on shutdown within a bounded grace period. The API, WebSockets and console join here.

mod health;
mod readiness;
mod serve;

pub use health::router;
pub use readiness::{ModelsCheck, Readiness};
pub use serve::{AppState, serve};
