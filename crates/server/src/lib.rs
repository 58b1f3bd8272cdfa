//! Switchboard's HTTP edge: liveness and readiness, the `/api/v1` REST API with API-key and JWT auth,
//! the call WebSocket `/ws/audio/{call_id}`, Twilio's webhooks and Media Streams, Asterisk's AudioSocket
//! listener and ARI, the SIP user agent's calls, Prometheus `/metrics`, and a server that drains in-flight
//! work on shutdown within a bounded grace period.

mod admin;
mod api;
pub mod ari;
mod audiosocket;
pub mod auth;
mod carrier;
mod console;
mod control;
mod erasure;
mod error;
mod health;
pub mod metrics;
pub mod nodes;
pub mod oidc;
mod openapi;
pub mod ratelimit;
mod readiness;
mod recordings;
pub mod registry;
pub mod retention;
mod serve;
mod sip;
pub mod spool;
pub mod tickets;
pub mod tls;
pub mod trust;
mod twilio;
pub mod ws;

pub use ari::run_ari_events;
pub use audiosocket::serve_audiosocket;
pub use auth::{Authenticator, Principal, Role, generate_api_key};
pub use error::ApiError;
pub use readiness::{EnginesCheck, ModelsCheck, Readiness};
pub use registry::CallRegistry;
pub use serve::{AppState, app, metrics_app, serve};
pub use sip::{SipLink, advertised_address, serve_sip};

/// The liveness and readiness routes alone (kept for callers that serve nothing else).
pub use health::router;
