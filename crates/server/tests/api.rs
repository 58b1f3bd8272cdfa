//! The REST API's contract: every /api/v1 route refuses requests without credentials (401), a viewer
//! cannot change anything (403), errors have one JSON shape, bad ids and unknown calls are clear errors,
//! and every change lands in the audit log.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use switchboard_core::Config;
use switchboard_core::config::DatabaseTarget;
use switchboard_server::{AppState, Readiness, Role, app, generate_api_key};
use switchboard_store::Database;
use tower::ServiceExt;

struct Api {
    app: Router,
    state: AppState,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn new(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let vars: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = Config::from_layers(None, &|k| {
            vars.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        })
        .unwrap();
        let database = Database::connect(&DatabaseTarget::Sqlite {
            path: dir.path().join("sb.db"),
        })
        .await
        .unwrap();
        database.migrate().await.unwrap();
        let state = AppState::new(Arc::new(config), Readiness::default(), database).unwrap();
        Self {
            app: app(state.clone()),
            state,
            _dir: dir,
        }
    }

    async fn key(&self, role: Role) -> String {
        let key = generate_api_key("test", role).unwrap();
        self.state
            .database
            .insert_api_key(&key.record)
            .await
            .unwrap();
        key.key
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(v) => {
                request = request.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

const SOME_ID: &str = "0192f0a0-0000-7000-8000-000000000000";

fn every_route() -> Vec<(Method, String)> {
    vec![
        (Method::GET, "/api/v1/calls".into()),
        (Method::POST, "/api/v1/calls".into()),
        (Method::GET, format!("/api/v1/calls/{SOME_ID}")),
        (Method::DELETE, format!("/api/v1/calls/{SOME_ID}")),
        (Method::GET, format!("/api/v1/calls/{SOME_ID}/transcript")),
        (Method::GET, format!("/api/v1/calls/{SOME_ID}/summary")),
        (Method::GET, format!("/api/v1/calls/{SOME_ID}/events")),
        (Method::POST, "/api/v1/keys".into()),
        (Method::DELETE, "/api/v1/keys/abc".into()),
        (Method::GET, "/api/v1/audit".into()),
        (Method::GET, "/api/v1/openapi.json".into()),
    ]
}

#[tokio::test]
async fn every_route_without_credentials_is_401_with_the_error_shape() {
    let api = Api::new(&[]).await;
    for (method, path) in every_route() {
        let (status, body) = api.send(method.clone(), &path, None, Some(json!({}))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(
            body["error"]["code"], "unauthorized",
            "{method} {path}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Bearer")
        );
        let (status, _) = api
            .send(method.clone(), &path, Some("sb_nope_0000"), None)
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with an unknown key"
        );
    }
    // Open routes stay open.
    assert_eq!(
        api.send(Method::GET, "/health", None, None).await.0,
        StatusCode::OK
    );
    let metrics = api
        .app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/metrics")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_viewer_reads_but_every_mutation_is_403() {
    let api = Api::new(&[]).await;
    let viewer = api.key(Role::Viewer).await;
    for (method, path) in every_route().into_iter().filter(|(m, _)| *m != Method::GET) {
        let (status, body) = api
            .send(
                method.clone(),
                &path,
                Some(&viewer),
                Some(json!({"name": "x", "role": "admin"})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    let (status, body) = api
        .send(Method::GET, "/api/v1/calls", Some(&viewer), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The audit log is for admins.
    assert_eq!(
        api.send(Method::GET, "/api/v1/audit", Some(&viewer), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn calls_are_created_listed_read_and_ended_with_an_audit_trail() {
    let api = Api::new(&[]).await;
    let supervisor = api.key(Role::Supervisor).await;
    let admin = api.key(Role::Admin).await;
    let (status, created) = api
        .send(
            Method::POST,
            "/api/v1/calls",
            Some(&supervisor),
            Some(json!({"to_number": "+14155550100", "context": {"policy": "P-1"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "pending");
    assert_eq!(created["audio_url"], format!("/ws/audio/{id}"));
    assert_eq!(created["context"]["policy"], "P-1");

    let (_, listed) = api
        .send(
            Method::GET,
            "/api/v1/calls?direction=outbound&limit=5",
            Some(&supervisor),
            None,
        )
        .await;
    assert_eq!(listed["calls"][0]["id"], id.as_str());
    let (_, none) = api
        .send(
            Method::GET,
            "/api/v1/calls?status=ended",
            Some(&supervisor),
            None,
        )
        .await;
    assert_eq!(none["calls"].as_array().unwrap().len(), 0);
    let (status, transcript) = api
        .send(
            Method::GET,
            &format!("/api/v1/calls/{id}/transcript"),
            Some(&supervisor),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(transcript["turns"].as_array().unwrap().len(), 0);
    let (status, body) = api
        .send(
            Method::GET,
            &format!("/api/v1/calls/{id}/summary"),
            Some(&supervisor),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, _) = api
        .send(
            Method::DELETE,
            &format!("/api/v1/calls/{id}"),
            Some(&supervisor),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, call) = api
        .send(
            Method::GET,
            &format!("/api/v1/calls/{id}"),
            Some(&supervisor),
            None,
        )
        .await;
    assert_eq!(call["status"], "ended");
    assert_eq!(call["end_reason"], "ended_by_api");
    let (status, body) = api
        .send(
            Method::DELETE,
            &format!("/api/v1/calls/{id}"),
            Some(&supervisor),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (_, audit) = api
        .send(Method::GET, "/api/v1/audit", Some(&admin), None)
        .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["call.end", "call.create"]);
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let api = Api::new(&[]).await;
    let supervisor = api.key(Role::Supervisor).await;
    let (status, body) = api
        .send(
            Method::GET,
            "/api/v1/calls/not-a-uuid",
            Some(&supervisor),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a call id")
    );
    let (status, body) = api
        .send(
            Method::GET,
            &format!("/api/v1/calls/{SOME_ID}"),
            Some(&supervisor),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = api
        .send(
            Method::POST,
            "/api/v1/calls",
            Some(&supervisor),
            Some(json!({"to_number": "call me maybe"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api
        .send(
            Method::POST,
            "/api/v1/calls",
            Some(&supervisor),
            Some(json!({"context": "x".repeat(20_000)})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api
        .send(
            Method::POST,
            "/api/v1/calls",
            Some(&supervisor),
            Some(json!([1, 2])),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
}

#[tokio::test]
async fn admins_make_and_revoke_keys_and_revoked_keys_stop_working() {
    let api = Api::new(&[]).await;
    let admin = api.key(Role::Admin).await;
    let (status, made) = api
        .send(
            Method::POST,
            "/api/v1/keys",
            Some(&admin),
            Some(json!({"name": "console", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let key = made["key"].as_str().unwrap().to_owned();
    assert_eq!(
        api.send(Method::GET, "/api/v1/calls", Some(&key), None)
            .await
            .0,
        StatusCode::OK
    );
    let id = made["id"].as_str().unwrap();
    let (status, _) = api
        .send(
            Method::DELETE,
            &format!("/api/v1/keys/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.send(Method::GET, "/api/v1/calls", Some(&key), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = api
        .send(
            Method::POST,
            "/api/v1/keys",
            Some(&admin),
            Some(json!({"name": "x", "role": "root"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn jwt_bearer_tokens_carry_their_role() {
    let secret = "0123456789abcdef0123456789abcdef";
    let api = Api::new(&[("JWT_SECRET", secret)]).await;
    let token = |role: &str, exp: u64| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"sub": "alice", "role": role, "exp": exp}),
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let future = 4_000_000_000;
    let viewer = token("viewer", future);
    assert_eq!(
        api.send(Method::GET, "/api/v1/calls", Some(&viewer), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        api.send(
            Method::POST,
            "/api/v1/calls",
            Some(&viewer),
            Some(json!({}))
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    let supervisor = token("supervisor", future);
    assert_eq!(
        api.send(
            Method::POST,
            "/api/v1/calls",
            Some(&supervisor),
            Some(json!({}))
        )
        .await
        .0,
        StatusCode::CREATED
    );
    let (status, body) = api
        .send(
            Method::GET,
            "/api/v1/calls",
            Some(&token("admin", 1_000)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an expired token: {body}");
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "mallory", "role": "admin", "exp": future}),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-another-secret-xx"),
    )
    .unwrap();
    assert_eq!(
        api.send(Method::GET, "/api/v1/calls", Some(&forged), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_audio_websocket_checks_credentials_call_and_models_before_upgrading() {
    let api = Api::new(&[]).await;
    let viewer = api.key(Role::Viewer).await;
    let supervisor = api.key(Role::Supervisor).await;
    let ws = |path: String| {
        Request::builder()
            .uri(path)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(Body::empty())
            .unwrap()
    };
    let status = |path: String| {
        let app = api.app.clone();
        async move { app.oneshot(ws(path)).await.unwrap().status() }
    };
    assert_eq!(
        status(format!("/ws/audio/{SOME_ID}")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(format!("/ws/audio/{SOME_ID}?token={viewer}")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(format!("/ws/audio/nope?token={supervisor}")).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status(format!("/ws/audio/{SOME_ID}?token={supervisor}")).await,
        StatusCode::NOT_FOUND
    );
    let (_, created) = api
        .send(
            Method::POST,
            "/api/v1/calls",
            Some(&supervisor),
            Some(json!({})),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    // No models loaded on this node: refused with a reason, not a hang.
    assert_eq!(
        status(format!("/ws/audio/{id}?token={supervisor}")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn the_openapi_document_lists_only_routes_that_exist() {
    let api = Api::new(&[]).await;
    let admin = api.key(Role::Admin).await;
    let (status, doc) = api
        .send(Method::GET, "/api/v1/openapi.json", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", SOME_ID);
            let method: Method = method.to_uppercase().parse().unwrap();
            let (status, body) = api
                .send(method.clone(), &concrete, Some(&admin), None)
                .await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            // The router's own 404 has no body; ours (an unknown call) always says why.
            assert!(
                status != StatusCode::NOT_FOUND || body["error"]["code"] == "not_found",
                "{method} {path} is not served"
            );
        }
    }
}

#[tokio::test]
async fn requests_over_the_rate_limit_get_429_per_credential() {
    let api = Api::new(&[("RATE_LIMIT_PER_MINUTE", "3")]).await;
    let busy = api.key(Role::Viewer).await;
    let other = api.key(Role::Viewer).await;
    for _ in 0..3 {
        assert_eq!(
            api.send(Method::GET, "/api/v1/calls", Some(&busy), None)
                .await
                .0,
            StatusCode::OK
        );
    }
    let (status, body) = api
        .send(Method::GET, "/api/v1/calls", Some(&busy), None)
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(
        api.send(Method::GET, "/api/v1/calls", Some(&other), None)
            .await
            .0,
        StatusCode::OK
    );
}
