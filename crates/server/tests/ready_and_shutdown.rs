//! `/health`, `/ready` through each of its states, and shutdown draining within the grace period.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use http_body_util::BodyExt;
use switchboard_core::Config;
use switchboard_core::config::DatabaseTarget;
use switchboard_models::{Manifest, Provisioner, QuietProgress};
use switchboard_server::{AppState, Readiness, router, serve};
use switchboard_store::Database;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

async fn state_in(dir: &std::path::Path) -> AppState {
    let config = Config::from_layers(None, &|_| None).unwrap();
    let database = Database::connect(&DatabaseTarget::Sqlite {
        path: dir.join("sb.db"),
    })
    .await
    .unwrap();
    AppState::new(Arc::new(config), Readiness::default(), database).unwrap()
}

async fn get_json(app: &Router, path: &str) -> (StatusCode, serde_json::Value) {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn wait_for_models_check(readiness: &Readiness) {
    for _ in 0..200 {
        if readiness.models() != switchboard_server::ModelsCheck::Verifying {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("model check never finished");
}

#[tokio::test]
async fn ready_reports_each_missing_piece_then_turns_green() {
    let dir = tempfile::tempdir().unwrap();
    let models_dir = dir.path().join("models");
    let state = state_in(dir.path()).await;
    let app = router(state.clone());

    let (code, body) = get_json(&app, "/health").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["status"], "ok");

    // Before any check: models verifying, schema not migrated.
    let (code, body) = get_json(&app, "/ready").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["checks"]["models"]["status"], "verifying");
    assert_eq!(body["checks"]["database"]["status"], "not_ready");
    assert!(
        body["reason"].as_str().unwrap().contains("migrations"),
        "{body}"
    );

    state.database.migrate().await.unwrap();
    let stop = CancellationToken::new();
    let required = vec!["silero-vad".to_string()];
    let checker = state.readiness.spawn_model_check(
        models_dir.clone(),
        required.clone(),
        Duration::from_millis(50),
        stop.clone(),
    );
    wait_for_models_check(&state.readiness).await;
    let (code, body) = get_json(&app, "/ready").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(
        body["checks"]["models"]["problems"][0],
        "silero-vad: missing"
    );
    assert!(
        body["checks"]["models"]["fix"]
            .as_str()
            .unwrap()
            .contains("switchboard models fetch silero-vad")
    );

    // Provisioning while the server runs makes it ready without a restart.
    let manifest = Manifest::builtin().unwrap();
    Provisioner::new(&models_dir)
        .fetch(manifest.model("silero-vad").unwrap(), &QuietProgress)
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), checker)
        .await
        .unwrap()
        .unwrap();
    let (code, body) = get_json(&app, "/ready").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    assert!(body["reason"].is_null());
    stop.cancel();
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

fn slow_router(delay: Duration) -> Router {
    Router::new().route(
        "/slow",
        get(move || async move {
            tokio::time::sleep(delay).await;
            "done"
        }),
    )
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let signal = stop.clone();
    let server = tokio::spawn(serve(
        listener,
        slow_router(Duration::from_millis(300)),
        async move { signal.cancelled().await },
        Duration::from_secs(5),
    ));
    let request = tokio::spawn(http_get(addr, "/slow"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.cancel();
    let response = request.await.unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200") && response.ends_with("done"),
        "{response}"
    );
    assert!(server.await.unwrap().unwrap(), "everything drained");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn shutdown_is_bounded_by_the_grace_period() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let signal = stop.clone();
    let server = tokio::spawn(serve(
        listener,
        slow_router(Duration::from_secs(60)),
        async move { signal.cancelled().await },
        Duration::from_millis(200),
    ));
    let _stuck = tokio::spawn(http_get(addr, "/slow"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    stop.cancel();
    let drained = server.await.unwrap().unwrap();
    assert!(!drained);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}
