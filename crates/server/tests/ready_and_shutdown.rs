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

/// Seconds in a compose duration such as `30s` or `1m30s`.
fn compose_seconds(text: &str) -> u64 {
    let mut total = 0;
    let mut number = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' => number.push(c),
            'm' => total += 60 * number.drain(..).as_str().parse::<u64>().unwrap(),
            's' => total += number.drain(..).as_str().parse::<u64>().unwrap(),
            other => panic!("unexpected {other} in the duration {text}"),
        }
    }
    total
}

/// The shipped deployment (Dockerfile, deploy/compose.yaml, deploy/k8s) names only settings this build
/// knows, probes paths this server answers on the port it listens on, and gives a stopping node at least
/// its drain and grace (SHUTDOWN_DRAIN_MS + SHUTDOWN_GRACE_MS) before it is killed.
#[tokio::test]
async fn the_shipped_deployment_files_agree_with_the_binary() {
    use serde_yaml_ng::Value;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let known: std::collections::HashSet<&str> = switchboard_core::config::settings::ALL
        .iter()
        .map(|s| s.env)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let app = router(state_in(dir.path()).await);
    let served = |path: String| {
        let app = app.clone();
        async move {
            let response = app
                .oneshot(Request::get(path.as_str()).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_ne!(
                response.status(),
                StatusCode::NOT_FOUND,
                "{path} is not served"
            );
        }
    };
    let check_env = |name: &str, file: &str| {
        assert!(
            known.contains(name),
            "{file} sets {name}, which is not a setting"
        );
    };

    // Dockerfile: every ENV a setting, the port exposed the one it listens on.
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let mut in_env = false;
    let mut port = None;
    for line in dockerfile.lines() {
        let line = line.trim();
        let body = match line.strip_prefix("ENV ") {
            Some(rest) => rest,
            None if in_env => line,
            None => continue,
        };
        in_env = body.ends_with('\\');
        for pair in body.trim_end_matches('\\').split_whitespace() {
            let (name, value) = pair.split_once('=').unwrap();
            check_env(name, "Dockerfile");
            if name == "SERVER_PORT" {
                port = Some(value.to_owned());
            }
        }
    }
    let port = port.expect("the Dockerfile sets SERVER_PORT");
    assert!(dockerfile.contains(&format!("EXPOSE {port}")));
    served("/health".into()).await;

    // Compose: the nodes' settings, their health check, and their stop grace.
    let compose: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root.join("deploy/compose.yaml")).unwrap(),
    )
    .unwrap();
    let mut nodes = 0;
    for (name, service) in compose["services"].as_mapping().unwrap() {
        if !name.as_str().unwrap().starts_with("switchboard") {
            continue;
        }
        nodes += 1;
        let env = service["environment"].as_mapping().unwrap();
        let ms = |key: &str| -> u64 { env[key].as_str().unwrap().parse().unwrap() };
        for (key, _) in env {
            check_env(key.as_str().unwrap(), "deploy/compose.yaml");
        }
        let grace = compose_seconds(service["stop_grace_period"].as_str().unwrap());
        assert!(
            grace * 1_000 >= ms("SHUTDOWN_DRAIN_MS") + ms("SHUTDOWN_GRACE_MS"),
            "compose stops a node before its drain and grace are over"
        );
        let test: Vec<&str> = service["healthcheck"]["test"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let url = test.iter().find(|t| t.starts_with("http://")).unwrap();
        let path = url.splitn(4, '/').nth(3).unwrap();
        assert!(url.contains(&format!(":{}/", ms("SERVER_PORT"))), "{url}");
        served(format!("/{path}")).await;
    }
    assert_eq!(nodes, 2);

    // Kubernetes: the ConfigMap's and the Deployment's settings, the probes, the grace period.
    let mut config = std::collections::BTreeMap::new();
    let mut deployments = Vec::new();
    let k8s = std::fs::read_dir(root.join("deploy/k8s")).unwrap();
    for file in k8s {
        let path = file.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let manifest = <Value as serde::Deserialize>::deserialize(document).unwrap();
            match manifest["kind"].as_str() {
                Some("ConfigMap") => {
                    for (key, value) in manifest["data"].as_mapping().unwrap() {
                        check_env(key.as_str().unwrap(), &name);
                        config.insert(
                            key.as_str().unwrap().to_owned(),
                            value.as_str().unwrap().to_owned(),
                        );
                    }
                }
                Some("Secret") => {
                    for (key, _) in manifest["stringData"].as_mapping().unwrap() {
                        let key = key.as_str().unwrap();
                        if key != "data.key" {
                            check_env(key, &name);
                        }
                    }
                }
                Some("Deployment") => deployments.push(manifest),
                _ => {}
            }
        }
    }
    assert_eq!(deployments.len(), 1);
    let ms = |key: &str| -> u64 { config[key].parse().unwrap() };
    let pod = &deployments[0]["spec"]["template"]["spec"];
    assert!(
        pod["terminationGracePeriodSeconds"].as_u64().unwrap() * 1_000
            >= ms("SHUTDOWN_DRAIN_MS") + ms("SHUTDOWN_GRACE_MS"),
        "Kubernetes kills a pod before its drain and grace are over"
    );
    let container = &pod["containers"][0];
    for variable in container["env"].as_sequence().unwrap() {
        check_env(
            variable["name"].as_str().unwrap(),
            "deploy/k8s/deployment.yaml",
        );
    }
    let http = container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http")
        .unwrap();
    assert_eq!(http["containerPort"].as_u64().unwrap(), ms("SERVER_PORT"));
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["port"], "http", "{probe}");
        served(get["path"].as_str().unwrap().to_owned()).await;
    }
}
