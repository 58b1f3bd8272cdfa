//! The admin routes: API keys (`POST /api/v1/keys`, `DELETE /api/v1/keys/{id}`) and the audit log
//! (`GET /api/v1/audit`).

use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::epoch_ms;
use crate::auth::{Principal, Role, generate_api_key};
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
pub(crate) struct CreateKey {
    name: String,
    role: Role,
}

pub(crate) async fn create_key(
    State(state): State<AppState>,
    who: Principal,
    body: Result<Json<CreateKey>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    who.require(Role::Admin)?;
    let Json(body) = body?;
    if body.name.trim().is_empty() || body.name.len() > 100 {
        return Err(ApiError::bad_request("name must be 1 to 100 characters"));
    }
    let new = generate_api_key(body.name.trim(), body.role).map_err(ApiError::internal)?;
    state.database.insert_api_key(&new.record).await?;
    state
        .auth
        .audit(
            &who,
            "key.create",
            Some(new.record.id.clone()),
            Some(json!({"role": body.role}).to_string()),
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": new.record.id, "role": body.role, "key": new.key })),
    ))
}

pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    who.require(Role::Admin)?;
    if !state
        .database
        .revoke_api_key(&id, SystemTime::now())
        .await?
    {
        return Err(ApiError::not_found("no such active key"));
    }
    state.auth.audit(&who, "key.revoke", Some(id), None).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(crate) struct AuditQuery {
    limit: Option<u32>,
}

pub(crate) async fn audit_log(
    State(state): State<AppState>,
    who: Principal,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    who.require(Role::Admin)?;
    let entries = state
        .database
        .audit_log(query.limit.unwrap_or(100).clamp(1, 1_000))
        .await?;
    let entries: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "at_ms": epoch_ms(e.at),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "detail": e.detail,
            })
        })
        .collect();
    Ok(Json(json!({ "entries": entries })))
}
