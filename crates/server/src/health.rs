//! `/health` answers as long as the process serves HTTP; `/ready` answers 200 only when calls can be taken.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use switchboard_store::MigrationState;
use switchboard_telephony::sip::register::RegistrationStatus;

use crate::readiness::EnginesCheck;
use crate::{AppState, ModelsCheck};

/// How long `/ready` waits for the database before calling it unreachable.
const DATABASE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The routes of this node.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn ready(State(state): State<AppState>) -> Response {
    let models = state.readiness.models();
    let database = match tokio::time::timeout(
        DATABASE_CHECK_TIMEOUT,
        state.database.migration_state(),
    )
    .await
    {
        Ok(Ok(MigrationState::Current)) => {
            json!({ "status": "ok", "backend": state.database.display_url() })
        }
        Ok(Ok(MigrationState::Pending(versions))) => json!({
            "status": "not_ready",
            "problem": format!("migrations {versions:?} are not applied"),
            "fix": "run `switchboard migrate`, or set DATABASE_AUTO_MIGRATE=true",
        }),
        Ok(Err(e)) => json!({ "status": "not_ready", "problem": e.to_string() }),
        Err(_) => {
            json!({ "status": "not_ready", "problem": "the database did not answer within 2 s" })
        }
    };
    let database_ok = database["status"] == "ok";
    let models_ok = models == ModelsCheck::Ok;
    let engines = state.readiness.engines();
    let engines_ok = matches!(engines, EnginesCheck::Ok | EnginesCheck::NotUsed);
    let draining = state.readiness.draining();
    let ready = database_ok && models_ok && engines_ok && !draining;
    let mut reasons = Vec::new();
    if draining {
        reasons.push("shutting down: finishing its calls".to_owned());
    }
    match &engines {
        EnginesCheck::Loading => reasons.push("models are loading".to_owned()),
        EnginesCheck::Failed { problem } => {
            reasons.push(format!("models failed to load: {problem}"))
        }
        EnginesCheck::Ok | EnginesCheck::NotUsed => {}
    }
    match &models {
        ModelsCheck::Ok => {}
        ModelsCheck::Verifying => reasons.push("models are still being verified".to_owned()),
        ModelsCheck::NotReady { problems, .. } => {
            reasons.push(format!("models not ready: {}", problems.join(", ")))
        }
    }
    if !database_ok {
        reasons.push(format!(
            "database not ready: {}",
            database["problem"].as_str().unwrap_or("unknown")
        ));
    }
    let mut body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "reason": (!ready).then(|| reasons.join("; ")),
        "checks": {
            "config": { "status": "ok" },
            "models": models,
            "engines": engines,
            "database": database,
        },
    });
    // Shown, not gating: a node whose registration lapsed still serves the API and direct calls, and
    // its registration is being retried.
    if let Some(registration) = state.sip.as_ref().and_then(|sip| sip.registration()) {
        body["checks"]["sip_registration"] = registration_json(&registration);
    }
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

fn registration_json(status: &RegistrationStatus) -> serde_json::Value {
    match status {
        RegistrationStatus::Registering => json!({ "status": "registering" }),
        RegistrationStatus::Registered { expires } => {
            json!({ "status": "registered", "expires_s": expires.as_secs() })
        }
        RegistrationStatus::Failed { reason } => json!({ "status": "failed", "problem": reason }),
    }
}
