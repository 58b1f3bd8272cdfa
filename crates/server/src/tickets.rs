//! Single-use tickets for the call's audio WebSocket. A browser cannot set headers on a WebSocket, and a
//! key in the URL ends up in proxies' and servers' access logs, so a client first asks for a ticket with
//! its credentials (`POST /api/v1/calls/{id}/ticket`) and connects with `?ticket=`. A ticket opens that
//! one call, once, within a minute; it is kept in Redis when REDIS_HOST is set (so the connection may
//! reach any node) and in this process otherwise. Only a hash of it is stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_core::CallId;
use switchboard_store::LiveState;
use tokio::time::Instant;

use crate::auth::{Principal, Role};
use crate::{ApiError, AppState};

/// How long a ticket may wait to be used.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(60);

/// Tickets issued by this node, when there is no Redis to share them.
#[derive(Debug, Clone, Default)]
pub struct Tickets {
    held: Arc<Mutex<HashMap<String, Held>>>,
}

#[derive(Debug)]
struct Held {
    call: CallId,
    principal: Principal,
    expires: Instant,
}

fn digest(ticket: &str) -> String {
    hex::encode(Sha256::digest(ticket.as_bytes()))
}

fn refused() -> ApiError {
    ApiError::unauthorized(
        "this ticket is unknown, used already, expired or for another call: ask for a new one (POST /api/v1/calls/{id}/ticket)",
    )
}

impl Tickets {
    /// A new ticket for `principal` to open `call` once within [`TICKET_LIFETIME`].
    pub(crate) async fn issue(
        &self,
        live: Option<&LiveState>,
        principal: &Principal,
        call: CallId,
    ) -> Result<String, ApiError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)
            .map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
        let ticket = format!("sbt_{}", hex::encode(secret));
        match live {
            Some(live) => {
                let value = json!({
                    "call": call.to_string(),
                    "actor": principal.actor,
                    "role": principal.role.as_str(),
                });
                live.put_once(&digest(&ticket), &value.to_string(), TICKET_LIFETIME)
                    .await?;
            }
            None => {
                let now = Instant::now();
                let mut held = self
                    .held
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                held.retain(|_, h| h.expires > now);
                held.insert(
                    digest(&ticket),
                    Held {
                        call,
                        principal: principal.clone(),
                        expires: now + TICKET_LIFETIME,
                    },
                );
            }
        }
        Ok(ticket)
    }

    /// Who `ticket` was issued to, if it opens `call` now; the ticket is spent either way.
    pub(crate) async fn redeem(
        &self,
        live: Option<&LiveState>,
        ticket: &str,
        call: CallId,
    ) -> Result<Principal, ApiError> {
        let (for_call, principal) = match live {
            Some(live) => {
                let Some(value) = live.take_once(&digest(ticket)).await? else {
                    return Err(refused());
                };
                let value: Value = serde_json::from_str(&value).map_err(|_| refused())?;
                let field = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
                let role: Role = field("role").parse().map_err(|_| refused())?;
                let for_call: CallId = field("call").parse().map_err(|_| refused())?;
                (
                    for_call,
                    Principal {
                        actor: field("actor"),
                        role,
                    },
                )
            }
            None => {
                let held = self
                    .held
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&digest(ticket));
                match held {
                    Some(h) if h.expires > Instant::now() => (h.call, h.principal),
                    _ => return Err(refused()),
                }
            }
        };
        if for_call != call {
            return Err(refused());
        }
        Ok(principal)
    }
}

/// `POST /api/v1/calls/{id}/ticket`: a ticket that opens the call's audio WebSocket once within a minute.
pub(crate) async fn issue(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // The socket needs the supervisor role; a ticket gives no more than its holder has.
    who.require(Role::Supervisor)?;
    let call = crate::api::parse_id(&id)?;
    let record = state
        .database
        .call(call)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no call {call}")))?;
    if record.ended_at.is_some() {
        return Err(ApiError::conflict(format!("call {call} has ended")));
    }
    let ticket = state.tickets.issue(state.live.as_ref(), &who, call).await?;
    state
        .auth
        .audit(&who, "call.ticket", Some(call.to_string()), None)
        .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "ticket": ticket,
            "expires_in_s": TICKET_LIFETIME.as_secs(),
            "url": format!("/ws/audio/{call}?ticket={ticket}"),
        })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn someone() -> Principal {
        Principal {
            actor: "key:abc".into(),
            role: Role::Supervisor,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_ticket_opens_its_call_once_within_a_minute() {
        let tickets = Tickets::default();
        let call = CallId::new();
        let other = CallId::new();

        let ticket = tickets
            .issue(None, &someone(), call)
            .await
            .unwrap_or_default();
        assert!(ticket.starts_with("sbt_") && ticket.len() == 68, "{ticket}");
        assert_eq!(
            tickets.redeem(None, &ticket, call).await.ok(),
            Some(someone())
        );
        assert_eq!(
            tickets
                .redeem(None, &ticket, call)
                .await
                .err()
                .map(|e| e.status.as_u16()),
            Some(401)
        );

        let elsewhere = tickets
            .issue(None, &someone(), call)
            .await
            .unwrap_or_default();
        assert!(tickets.redeem(None, &elsewhere, other).await.is_err());
        assert!(
            tickets.redeem(None, &elsewhere, call).await.is_err(),
            "spent on the wrong call"
        );

        let late = tickets
            .issue(None, &someone(), call)
            .await
            .unwrap_or_default();
        tokio::time::advance(TICKET_LIFETIME + Duration::from_millis(1)).await;
        assert!(tickets.redeem(None, &late, call).await.is_err());
        assert!(tickets.redeem(None, "sbt_guess", call).await.is_err());
    }
}
