//! The REST API's contract: every /api/v1 route refuses requests without credentials (401), a viewer
//! cannot change anything (403), errors have one JSON shape, bad ids and unknown calls are clear errors,
//! and every change lands in the audit log.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
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
        let mut database = Database::connect(&DatabaseTarget::Sqlite {
            path: dir.path().join("sb.db"),
        })
        .await
        .unwrap();
        if let Some(path) = &config.database.data_key_file {
            let keys = switchboard_store::DataKeys::load(path).unwrap();
            database = database.with_data_keys(Arc::new(keys));
        }
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

    /// `POST /api/v1/calls` with an empty body, as `token`.
    async fn create_call(&self, token: &str) -> (StatusCode, Value) {
        self.send(Method::POST, "/api/v1/calls", Some(token), Some(json!({})))
            .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.send_from(None, method, path, token, body).await
    }

    /// As [`Api::send`], from the peer address `from` as the server would see it.
    async fn send_from(
        &self,
        from: Option<SocketAddr>,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(from) = from {
            request = request.extension(ConnectInfo(from));
        }
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
        (Method::DELETE, format!("/api/v1/calls/{SOME_ID}/data")),
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
    // Newest first; reading what callers said is kept too.
    assert_eq!(actions, ["call.end", "call.transcript.read", "call.create"]);
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
    assert_eq!(api.create_call(&viewer).await.0, StatusCode::FORBIDDEN);
    let supervisor = token("supervisor", future);
    assert_eq!(api.create_call(&supervisor).await.0, StatusCode::CREATED);
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
    let ws = |path: String, key: Option<&str>| {
        let mut request = Request::builder()
            .uri(path)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        request.body(Body::empty()).unwrap()
    };
    let status = |path: String, key: Option<&str>| {
        let app = api.app.clone();
        let request = ws(path, key);
        async move { app.oneshot(request).await.unwrap().status() }
    };
    assert_eq!(
        status(format!("/ws/audio/{SOME_ID}"), None).await,
        StatusCode::UNAUTHORIZED
    );
    // A key in the URL is refused even when it is good: it would be in every access log.
    assert_eq!(
        status(format!("/ws/audio/{SOME_ID}?token={supervisor}"), None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(format!("/ws/audio/{SOME_ID}"), Some(&viewer)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status("/ws/audio/nope".into(), Some(&supervisor)).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status(format!("/ws/audio/{SOME_ID}"), Some(&supervisor)).await,
        StatusCode::NOT_FOUND
    );
    let (_, created) = api.create_call(&supervisor).await;
    let id = created["id"].as_str().unwrap();
    // No models loaded on this node: refused with a reason, not a hang.
    assert_eq!(
        status(format!("/ws/audio/{id}"), Some(&supervisor)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Tickets: only for who may open the socket, for a call that exists, good once, for that call only.
    let ticket_path = format!("/api/v1/calls/{id}/ticket");
    let (code, _) = api
        .send(Method::POST, &ticket_path, Some(&viewer), None)
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _) = api
        .send(
            Method::POST,
            &format!("/api/v1/calls/{SOME_ID}/ticket"),
            Some(&supervisor),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, issued) = api
        .send(Method::POST, &ticket_path, Some(&supervisor), None)
        .await;
    assert_eq!(code, StatusCode::CREATED, "{issued}");
    assert_eq!(issued["expires_in_s"], 60);
    let url = issued["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("/ws/audio/{id}?ticket=sbt_")),
        "{url}"
    );
    assert_eq!(
        status(url.clone(), None).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "accepted"
    );
    assert_eq!(status(url, None).await, StatusCode::UNAUTHORIZED, "spent");
    let (_, other) = api.create_call(&supervisor).await;
    let (_, issued) = api
        .send(Method::POST, &ticket_path, Some(&supervisor), None)
        .await;
    let ticket = issued["ticket"].as_str().unwrap();
    assert_eq!(
        status(
            format!(
                "/ws/audio/{}?ticket={ticket}",
                other["id"].as_str().unwrap()
            ),
            None
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "a ticket opens only its own call"
    );
    let (_, audit) = api
        .send(
            Method::GET,
            "/api/v1/audit",
            Some(&api.key(Role::Admin).await),
            None,
        )
        .await;
    assert!(audit.to_string().contains("call.ticket"), "{audit}");
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

#[tokio::test]
async fn jwt_issuer_and_audience_are_required_when_set_and_named_when_wrong() {
    let secret = "0123456789abcdef0123456789abcdef";
    let token = |claims: Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let iss = "https://idp.example.com/";
    // A viewer's token with `iss` and `aud` when given.
    let claims = |iss: Option<&str>, aud: Option<&str>| {
        let mut claims = json!({"sub": "a", "role": "viewer", "exp": 4_000_000_000u64});
        if let Some(iss) = iss {
            claims["iss"] = json!(iss);
        }
        if let Some(aud) = aud {
            claims["aud"] = json!(aud);
        }
        token(claims)
    };
    let strict = Api::new(&[
        ("JWT_SECRET", secret),
        ("JWT_ISSUER", iss),
        ("JWT_AUDIENCE", "switchboard-api"),
    ])
    .await;
    async fn calls_with(api: &Api, token: String) -> (StatusCode, Value) {
        api.send(Method::GET, "/api/v1/calls", Some(&token), None)
            .await
    }
    let (status, body) = calls_with(&strict, claims(Some(iss), Some("switchboard-api"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = calls_with(&strict, claims(Some(iss), Some("another-app"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.to_string().contains("JWT_AUDIENCE"), "{body}");
    let evil = claims(Some("https://evil.example/"), Some("switchboard-api"));
    let (status, body) = calls_with(&strict, evil).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.to_string().contains("JWT_ISSUER"), "{body}");
    // Leaving a claim out does not get around it.
    for partial in [
        claims(None, Some("switchboard-api")),
        claims(Some(iss), None),
    ] {
        assert_eq!(
            calls_with(&strict, partial).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // Without JWT_AUDIENCE, a token made for some audience is refused, and the refusal says what to set.
    let plain = Api::new(&[("JWT_SECRET", secret)]).await;
    let (status, body) = calls_with(&plain, claims(None, Some("switchboard-api"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.to_string().contains("JWT_AUDIENCE"), "{body}");
}

#[tokio::test]
async fn a_source_over_its_limit_is_refused_before_its_credentials_and_failed_sign_ins_are_audited()
{
    let api = Api::new(&[
        ("RATE_LIMIT_PER_SOURCE_PER_MINUTE", "3"),
        ("RATE_LIMIT_PER_MINUTE", "0"),
    ])
    .await;
    let admin = api.key(Role::Admin).await;
    let stranger: SocketAddr = "192.0.2.9:40000".parse().unwrap();
    let guess = "sb_0123456789ab_guessedguessedguessedguessedguessedguessedgues";
    for _ in 0..3 {
        let (status, _) = api
            .send_from(
                Some(stranger),
                Method::GET,
                "/api/v1/calls",
                Some(guess),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Over its limit the source is refused whatever it sends, a valid key included.
    let (status, body) = api
        .send_from(
            Some(stranger),
            Method::GET,
            "/api/v1/calls",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        body.to_string()
            .contains("RATE_LIMIT_PER_SOURCE_PER_MINUTE"),
        "{body}"
    );
    let operator: SocketAddr = "198.51.100.1:50000".parse().unwrap();
    let (status, audit) = api
        .send_from(
            Some(operator),
            Method::GET,
            "/api/v1/audit",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let failed: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "sign_in.failed")
        .collect();
    assert_eq!(failed.len(), 3, "{audit}");
    assert!(
        failed.iter().all(|e| e["actor"] == "source:192.0.2.9"),
        "{audit}"
    );
    assert!(
        !audit.to_string().contains("guessed"),
        "the guess itself is never kept"
    );
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_the_console_keeps_its_own_policy() {
    let api = Api::new(&[]).await;
    let viewer = api.key(Role::Viewer).await;
    for (path, token) in [
        ("/health", None),
        ("/api/v1/calls", Some(viewer.as_str())),
        ("/api/v1/calls", None),
        ("/", None),
    ] {
        let mut request = Request::builder().uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = api
            .app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let headers = response.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("cache-control"), "no-store", "{path}");
        let policy = header("content-security-policy");
        if path == "/" {
            assert!(policy.contains("connect-src 'self'"), "{policy}");
        } else {
            assert_eq!(
                policy, "default-src 'none'; frame-ancestors 'none'",
                "{path}"
            );
        }
    }
}

#[tokio::test]
async fn a_served_node_counts_each_peer_address_before_credentials() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = Api::new(&[("RATE_LIMIT_PER_SOURCE_PER_MINUTE", "1")]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let server = tokio::spawn(switchboard_server::serve(
        listener,
        app(api.state.clone()),
        async move { stopped.cancelled().await },
        std::time::Duration::from_secs(1),
    ));
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
        socket
            .write_all(b"GET /api/v1/calls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        socket.read_to_string(&mut answer).await.unwrap();
        statuses.push(answer.split(' ').nth(1).unwrap_or_default().to_owned());
    }
    assert_eq!(
        statuses,
        ["401", "429"],
        "the second request from 127.0.0.1 is over its limit"
    );
    stop.cancel();
    let _ = server.await;
}

#[tokio::test]
async fn viewers_read_callers_values_masked_and_an_admin_erases_an_ended_calls_data_audited() {
    let api = Api::new(&[]).await;
    let supervisor = api.key(Role::Supervisor).await;
    let admin = api.key(Role::Admin).await;
    let (_, created) = api
        .send(
            Method::POST,
            "/api/v1/calls",
            Some(&supervisor),
            Some(json!({"to_number": "+14155550100", "context": {"policy": "P-1"}})),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let call_id: switchboard_core::CallId = id.parse().unwrap();
    let now = std::time::SystemTime::now();
    let db = &api.state.database;
    db.store_turn(
        call_id,
        1,
        switchboard_core::Speaker::Caller,
        "my card is 4111 1111 1111 1111",
        now,
        now,
    )
    .await
    .unwrap();
    let summary = switchboard_store::CallSummary {
        claim: r#"{"caller_name":"Ana Lopez","callback_phone":"+14155550100"}"#.into(),
        short_summary: "Ana Lopez reported a burst pipe.".into(),
        long_summary: String::new(),
        satisfaction: 4,
        improvement: String::new(),
        next_action: "follow_up".into(),
    };
    db.save_summary(call_id, &summary).await.unwrap();

    // A viewer reads callers' numbers and cards masked; a supervisor reads them as given.
    let viewer = api.key(Role::Viewer).await;
    let read = |path: String, key: String| {
        let api = &api;
        async move { api.send(Method::GET, &path, Some(&key), None).await.1 }
    };
    let as_viewer = read(format!("/api/v1/calls/{id}"), viewer.clone()).await;
    assert_eq!(as_viewer["to_number"], "[phone …0100]");
    assert_eq!(as_viewer["context"]["policy"], "P-1");
    assert_eq!(as_viewer["id"], id, "ids are not personal data");
    let as_supervisor = read(format!("/api/v1/calls/{id}"), supervisor.clone()).await;
    assert_eq!(as_supervisor["to_number"], "+14155550100");
    let lines = read(format!("/api/v1/calls/{id}/transcript"), viewer.clone()).await;
    assert_eq!(lines["turns"][0]["text"], "my card is [card …1111]");
    let lines = read(format!("/api/v1/calls/{id}/transcript"), supervisor.clone()).await;
    assert_eq!(lines["turns"][0]["text"], "my card is 4111 1111 1111 1111");
    let claim = read(format!("/api/v1/calls/{id}/summary"), viewer.clone()).await;
    assert_eq!(claim["claim"]["callback_phone"], "[phone …0100]");
    assert_eq!(claim["claim"]["caller_name"], "Ana Lopez");
    let claim = read(format!("/api/v1/calls/{id}/summary"), supervisor.clone()).await;
    assert_eq!(claim["claim"]["callback_phone"], "+14155550100");

    let data = format!("/api/v1/calls/{id}/data");

    let (status, body) = api.send(Method::DELETE, &data, Some(&admin), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "a call in progress: {body}");
    let (status, _) = api
        .send(
            Method::DELETE,
            &format!("/api/v1/calls/{id}"),
            Some(&supervisor),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .send(Method::DELETE, &data, Some(&supervisor), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "erasure is for admins");
    let (status, body) = api.send(Method::DELETE, &data, Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["erased"]["turns"], 1);
    assert_eq!(body["erased"]["summary"], true);

    let (_, transcript) = api
        .send(
            Method::GET,
            &format!("/api/v1/calls/{id}/transcript"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(transcript["turns"], json!([]));
    let (status, _) = api
        .send(
            Method::GET,
            &format!("/api/v1/calls/{id}/summary"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, call) = api
        .send(
            Method::GET,
            &format!("/api/v1/calls/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the call's row stays");
    assert_eq!(call["to_number"], Value::Null);
    assert_eq!(call["context"], Value::Null);
    let (_, audit) = api
        .send(Method::GET, "/api/v1/audit", Some(&admin), None)
        .await;
    let text = audit.to_string();
    assert!(text.contains("call.erase") && text.contains(&id), "{audit}");
    assert!(
        !text.contains("Ana Lopez") && !text.contains("4111"),
        "{audit}"
    );
}

/// An RSA key made by openssl as an identity provider would hold one: its PEM and its public JWK.
fn provider_key(dir: &std::path::Path, kid: &str) -> (Vec<u8>, Value) {
    use base64::Engine as _;
    let pem = dir.join(format!("{kid}.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let modulus = std::process::Command::new("openssl")
        .args(["rsa", "-noout", "-modulus", "-in"])
        .arg(&pem)
        .output()
        .unwrap();
    let modulus = String::from_utf8(modulus.stdout).unwrap();
    let modulus = hex::decode(modulus.trim().trim_start_matches("Modulus=")).unwrap();
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(modulus);
    let jwk = json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": n, "e": "AQAB"});
    (std::fs::read(&pem).unwrap(), jwk)
}

#[tokio::test]
async fn identity_provider_tokens_are_checked_against_its_published_keys_through_a_rotation() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let (pem_a, jwk_a) = provider_key(dir.path(), "key-a");
    let (pem_b, jwk_b) = provider_key(dir.path(), "key-b");

    // The provider: discovery and a key set that can be rotated, counting reads of the set.
    let published = Arc::new(Mutex::new(json!({ "keys": [jwk_a] })));
    let reads = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!(
        "http://{}/realms/callcenter",
        listener.local_addr().unwrap()
    );
    let provider = {
        let (issuer, published, reads) = (issuer.clone(), published.clone(), reads.clone());
        Router::new()
            .route(
                "/realms/callcenter/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let issuer = issuer.clone();
                    async move {
                        axum::Json(json!({"issuer": issuer, "jwks_uri": format!("{issuer}/certs")}))
                    }
                }),
            )
            .route(
                "/realms/callcenter/certs",
                axum::routing::get(move || {
                    reads.fetch_add(1, Ordering::SeqCst);
                    let keys = published.lock().unwrap().clone();
                    async move { axum::Json(keys) }
                }),
            )
    };
    tokio::spawn(async move { axum::serve(listener, provider).await });

    let api = Api::new(&[
        ("OIDC_ISSUER", &issuer),
        ("OIDC_AUDIENCE", "switchboard-api"),
        ("OIDC_ROLE_CLAIM", "realm_access.roles"),
    ])
    .await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = |pem: &[u8], kid: &str, claims: Value| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(pem).unwrap(),
        )
        .unwrap()
    };
    let claims = |aud: &str, iss: &str, roles: Value| json!({"iss": iss, "aud": aud, "sub": "ana", "exp": exp, "realm_access": {"roles": roles}});
    let supervisor = claims(
        "switchboard-api",
        &issuer,
        json!(["offline_access", "supervisor"]),
    );
    let calls = |token: String| {
        let api = &api;
        async move {
            api.send(Method::GET, "/api/v1/calls", Some(&token), None)
                .await
        }
    };

    let (status, body) = calls(token(&pem_a, "key-a", supervisor.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = calls(token(
        &pem_a,
        "key-a",
        claims("another-app", &issuer, json!(["admin"])),
    ))
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.to_string().contains("audience"), "{body}");
    let (status, _) = calls(token(
        &pem_a,
        "key-a",
        claims(
            "switchboard-api",
            "http://elsewhere/realm",
            json!(["admin"]),
        ),
    ))
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = calls(token(
        &pem_a,
        "key-a",
        claims("switchboard-api", &issuer, json!(["offline_access"])),
    ))
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no role: {body}");
    let viewer = token(
        &pem_a,
        "key-a",
        claims("switchboard-api", &issuer, json!("viewer")),
    );
    let (status, _) = api.create_call(&viewer).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a viewer places no call");
    // Signed with a key the provider does not publish, under a published key's id.
    let (forged, _) = provider_key(dir.path(), "forger");
    let (status, _) = calls(token(&forged, "key-a", supervisor.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A shared-secret token naming the provider's key is not taken (no algorithm confusion).
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("key-a".into());
    let hs = jsonwebtoken::encode(
        &header,
        &supervisor,
        &jsonwebtoken::EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    assert_eq!(calls(hs).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reads.load(Ordering::SeqCst),
        1,
        "one read of the key set so far"
    );

    // The provider rotates: key B replaces key A. The first token signed with B makes the set be read
    // again; A's tokens are refused from then on.
    *published.lock().unwrap() = json!({ "keys": [jwk_b] });
    let (status, body) = calls(token(&pem_b, "key-b", supervisor.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(reads.load(Ordering::SeqCst), 2);
    let (status, _) = calls(token(&pem_a, "key-a", supervisor.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reads.load(Ordering::SeqCst),
        3,
        "key-a was looked for once more"
    );
    // Tokens naming made-up keys do not make the provider be asked again and again: three reads a
    // minute for unknown keys, the last of which is this flood's first token.
    for n in 0..5 {
        let (status, _) = calls(token(&pem_b, &format!("made-up-{n}"), supervisor.clone())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(reads.load(Ordering::SeqCst), 4);
    let admin = api.key(Role::Admin).await;
    let (_, audit) = api
        .send(Method::GET, "/api/v1/audit?limit=100", Some(&admin), None)
        .await;
    assert!(audit.to_string().contains("sign_in.failed"), "{audit}");
}

#[tokio::test]
async fn a_supervisor_downloads_a_recording_as_wav_audited_and_erasure_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("keys");
    std::fs::write(&key_file, switchboard_store::new_key_line("k").unwrap()).unwrap();
    let api = Api::new(&[("DATA_KEY_FILE", key_file.to_str().unwrap())]).await;
    let supervisor = api.key(Role::Supervisor).await;
    let viewer = api.key(Role::Viewer).await;
    let admin = api.key(Role::Admin).await;
    let (_, created) = api.create_call(&supervisor).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let call: switchboard_core::CallId = id.parse().unwrap();
    let path = format!("/api/v1/calls/{id}/recording");
    let get = |key: String| {
        let app = api.app.clone();
        let path = path.clone();
        async move {
            let response = app
                .oneshot(
                    Request::get(&path)
                        .header("authorization", format!("Bearer {key}"))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, bytes.to_vec())
        }
    };
    assert_eq!(
        get(supervisor.clone()).await.0,
        StatusCode::NOT_FOUND,
        "nothing recorded yet"
    );
    let db = &api.state.database;
    db.store_recording_chunk(call, 0, 8_000, &[100, -100, 200, -200])
        .await
        .unwrap();
    db.store_recording_chunk(call, 1, 8_000, &[300, -300])
        .await
        .unwrap();

    assert_eq!(get(viewer).await.0, StatusCode::FORBIDDEN);
    let (status, wav) = get(supervisor.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(
        u16::from_le_bytes([wav[22], wav[23]]),
        2,
        "caller and agent"
    );
    let samples: Vec<i16> = wav[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(samples, [100, -100, 200, -200, 300, -300]);
    let (_, audit) = api
        .send(Method::GET, "/api/v1/audit", Some(&admin), None)
        .await;
    assert!(audit.to_string().contains("call.recording.read"), "{audit}");

    api.send(
        Method::DELETE,
        &format!("/api/v1/calls/{id}"),
        Some(&supervisor),
        None,
    )
    .await;
    let (status, erased) = api
        .send(
            Method::DELETE,
            &format!("/api/v1/calls/{id}/data"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["erased"]["recording_chunks"], 2);
    assert_eq!(get(supervisor).await.0, StatusCode::NOT_FOUND);
}
