//! Two nodes behind one load balancer, sharing a database and the Redis at 127.0.0.1:6379
//! (TEST_REDIS_HOST overrides): a call carried by node B is ended and watched through node A, and a call
//! whose node vanished is settled by the node asked. Skipped with a message when Redis is unreachable,
//! except under CI=true.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use switchboard_core::config::{DatabaseTarget, RedisConfig};
use switchboard_core::{CallId, Config};
use switchboard_server::{AppState, Readiness, Role, app, generate_api_key};
use switchboard_store::{Database, LiveState};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

async fn shared(node: &str) -> Option<LiveState> {
    let config = RedisConfig::plain(
        std::env::var("TEST_REDIS_HOST").unwrap_or_else(|_| "127.0.0.1".into()),
        6379,
    );
    match LiveState::connect(&config, node).await {
        Ok(live) => Some(live),
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIPPED: Redis unreachable ({e})");
            None
        }
        Err(e) => panic!("CI=true and Redis is unreachable: {e}"),
    }
}

struct Node {
    state: AppState,
    app: Router,
}

async fn node(database: &Database, name: &str, stop: &CancellationToken) -> Option<Node> {
    let config = Config::from_layers(None, &|_| None).unwrap();
    let mut state =
        AppState::new(Arc::new(config), Readiness::default(), database.clone()).unwrap();
    let live = shared(name).await?;
    switchboard_server::nodes::listen_for_commands(live.clone(), state.calls.clone(), stop.clone())
        .await
        .unwrap();
    state.live = Some(live);
    Some(Node {
        app: app(state.clone()),
        state,
    })
}

async fn send(app: &Router, method: Method, path: &str, key: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn create_call(app: &Router, key: &str) -> CallId {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/calls")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    body["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_call_on_one_node_is_ended_and_watched_through_another() {
    let dir = tempfile::tempdir().unwrap();
    let database = Database::connect(&DatabaseTarget::Sqlite {
        path: dir.path().join("sb.db"),
    })
    .await
    .unwrap();
    database.migrate().await.unwrap();
    let stop = CancellationToken::new();
    let suffix = CallId::new();
    let Some(a) = node(&database, &format!("test-a-{suffix}"), &stop).await else {
        return;
    };
    let b = node(&database, &format!("test-b-{suffix}"), &stop)
        .await
        .unwrap();
    let key = generate_api_key("nodes", Role::Supervisor).unwrap();
    database.insert_api_key(&key.record).await.unwrap();

    // A call placed through node A, whose audio node B carries.
    let id = create_call(&a.app, &key.key).await;
    let (_registration, carried) = b.state.calls.register(id).unwrap();
    let b_shared = b.state.live.clone().unwrap();
    b_shared.call_started(id).await.unwrap();

    // Node A follows the call's events as B publishes them.
    let request = Request::builder()
        .uri(format!("/api/v1/calls/{id}/events"))
        .header("authorization", format!("Bearer {}", key.key))
        .body(Body::empty())
        .unwrap();
    let response = a.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    // The follower reads from the moment it was created; publish after the view opened.
    let event = r#"{"event":"transcript","speaker":"caller","text":"my car was hit"}"#;
    b_shared.publish(id, event).await.unwrap();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("my car was hit") {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("node A relays B's event within 10 s")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(seen.contains(&format!("data: {event}")), "{seen}");

    // DELETE through A reaches B's call.
    let (status, body) = send(
        &a.app,
        Method::DELETE,
        &format!("/api/v1/calls/{id}"),
        &key.key,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["node"], b_shared.node(), "{body}");
    tokio::time::timeout(Duration::from_secs(5), carried.hangup.cancelled())
        .await
        .expect("node B is told to hang up within 5 s");

    // A call registered to a node that no longer listens is settled by the node asked.
    let ghost = shared(&format!("test-ghost-{suffix}")).await.unwrap();
    let orphan = create_call(&a.app, &key.key).await;
    ghost.call_started(orphan).await.unwrap();
    let (status, body) = send(
        &a.app,
        Method::DELETE,
        &format!("/api/v1/calls/{orphan}"),
        &key.key,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("node").is_none(), "{body}");
    assert_eq!(
        ghost.owner(orphan).await.unwrap(),
        None,
        "stale registration removed"
    );
    let (_, body) = send(
        &a.app,
        Method::GET,
        &format!("/api/v1/calls/{orphan}"),
        &key.key,
    )
    .await;
    assert!(
        !body["ended_at_ms"].is_null(),
        "the orphan's record is ended: {body}"
    );
    let (status, _) = send(
        &a.app,
        Method::GET,
        &format!("/api/v1/calls/{orphan}/events"),
        &key.key,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    b_shared.call_ended(id).await.unwrap();
    stop.cancel();
}
