//! The OpenAPI 3.1 description of the API, served at `/api/v1/openapi.json`. Written out here rather than
//! generated: the routes are few, and a test checks that every route in it is one the router serves.

use serde_json::{Value, json};

fn op(summary: &str, role: &str, params: &[&str], ok: &str) -> Value {
    let parameters: Vec<Value> = params
        .iter()
        .map(|p| {
            let (name, location) = p.split_once(':').unwrap_or((p, "query"));
            json!({ "name": name, "in": location, "required": location == "path", "schema": { "type": "string" } })
        })
        .collect();
    json!({
        "summary": summary,
        "description": format!("Needs the {role} role."),
        "parameters": parameters,
        "responses": {
            ok: { "description": "success" },
            "400": { "$ref": "#/components/responses/Error" },
            "401": { "$ref": "#/components/responses/Error" },
            "403": { "$ref": "#/components/responses/Error" },
            "404": { "$ref": "#/components/responses/Error" }
        }
    })
}

/// The document.
pub(crate) fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A local AI phone agent. Audio flows over WS /ws/audio/{call_id} (JSON events: start, media, dtmf, mark, stop in; connected, media, mark, clear, transcript, latency, hangup, error out)."
        },
        "security": [{ "bearer": [] }],
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "An API key (sb_...) or a JWT with a `role` claim." }
            },
            "responses": {
                "Error": {
                    "description": "An error",
                    "content": { "application/json": { "schema": {
                        "type": "object",
                        "properties": { "error": { "type": "object", "properties": {
                            "code": { "type": "string" }, "message": { "type": "string" } } } }
                    } } }
                }
            }
        },
        "paths": {
            "/health": { "get": { "summary": "Liveness", "security": [], "responses": { "200": { "description": "alive" } } } },
            "/ready": { "get": { "summary": "Readiness: models verified, database current", "security": [], "responses": { "200": { "description": "ready" }, "503": { "description": "not ready" } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "security": [], "responses": { "200": { "description": "text exposition format" } } } },
            "/api/v1/calls": {
                "get": op("List calls, newest first", "viewer", &["status", "direction", "number", "since_ms", "limit"], "200"),
                "post": op("Place a call: {to_number, from_number, context}; its audio connects at audio_url", "supervisor", &[], "201")
            },
            "/api/v1/calls/{id}": {
                "get": op("A call", "viewer", &["id:path"], "200"),
                "delete": op("End a call", "supervisor", &["id:path"], "200")
            },
            "/api/v1/calls/{id}/dtmf": { "post": op("Send key presses to the far end of a connected SIP call: {digits} (0-9, *, #, A-D; up to 32)", "supervisor", &["id:path"], "202") },
            "/api/v1/calls/{id}/data": { "delete": op("Erase an ended call's transcript, claim, synthesis, numbers, context and live events; the call's row and the audit entry stay", "admin", &["id:path"], "200") },
            "/api/v1/calls/{id}/transcript": { "get": op("A call's stored turns", "viewer", &["id:path"], "200") },
            "/api/v1/calls/{id}/summary": { "get": op("A call's claim and post-call synthesis", "viewer", &["id:path"], "200") },
            "/api/v1/calls/{id}/recording": { "get": op("The call's recording as a WAV file (caller left, agent right; RECORDING), each read audited", "supervisor", &["id:path"], "200") },
            "/api/v1/calls/{id}/events": { "get": op("Live events of a connected call (server-sent events)", "viewer", &["id:path"], "200") },
            "/api/v1/keys": { "post": op("Create an API key: {name, role}; the key is shown once", "admin", &[], "201") },
            "/api/v1/keys/{id}": { "delete": op("Revoke an API key", "admin", &["id:path"], "204") },
            "/api/v1/audit": { "get": op("The audit log, newest first", "admin", &["limit"], "200") },
            "/api/v1/openapi.json": { "get": op("This document", "viewer", &[], "200") },
            "/api/v1/calls/{id}/ticket": { "post": op("A single-use ticket that opens the call's audio WebSocket within 60 s: {ticket, expires_in_s, url}", "supervisor", &["id:path"], "201") },
            "/ws/audio/{id}": { "get": op("The call's audio WebSocket; authenticate with ?ticket= (POST /api/v1/calls/{id}/ticket) or an Authorization header; a key in the URL is refused", "supervisor", &["id:path", "ticket"], "101") }
        }
    })
}
