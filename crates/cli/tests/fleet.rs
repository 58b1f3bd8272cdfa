//! `scripts/fleet.sh` with real processes on loopback: two nodes sharing PostgreSQL and the test's own
//! Redis behind HAProxy. Calls placed through the load balancer land on both nodes and any node answers
//! for any call; a node killed (SIGKILL) mid-call has its call ended as `node_lost` by the other within
//! its lease, and new calls are still answered; every metric the shipped alert rules read is on the
//! survivor's /metrics, and Prometheus' node-down alert for the killed node reaches Alertmanager;
//! SIGTERM makes the survivor's /ready say 503 first, then it ends its call and exits;
//! `down` leaves nothing running.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_core::CallId;
use switchboard_core::config::RedisConfig;
use switchboard_store::LiveState;
use tokio_tungstenite::tungstenite::Message;

use common::calls::postgres_schema;
use common::{provisioned_models, ws_request};

/// The node lease the fleet runs with: short, so the test waits little for a lost node.
const LEASE_MS: u64 = 3_000;

/// A free loopback port with the `count` ports after it free too.
fn free_ports(count: u16) -> u16 {
    for _ in 0..100 {
        let base = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if base > 65_000 {
            continue;
        }
        let all: Vec<_> = (0..=count)
            .map(|i| TcpListener::bind(("127.0.0.1", base + i)))
            .collect();
        if all.iter().all(Result::is_ok) {
            return base;
        }
    }
    panic!("no run of free ports");
}

fn fleet(dir: &Path, env: &[(&str, String)], command: &str) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fleet.sh");
    Command::new(script)
        .arg(command)
        .env("FLEET_DIR", dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

/// A call created and connected through `base` (the load balancer), live once its greeting begins.
async fn live_call(
    http: &reqwest::Client,
    base: &str,
    key: &str,
) -> (
    CallId,
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) {
    let created: Value = http
        .post(format!("{base}/api/v1/calls"))
        .bearer_auth(key)
        .json(&json!({"direction": "inbound"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id: CallId = created["id"].as_str().unwrap().parse().unwrap();
    let ws = base.replacen("http://", "ws://", 1);
    let (mut socket, _) =
        tokio_tungstenite::connect_async(ws_request(&format!("{ws}/ws/audio/{id}"), key))
            .await
            .unwrap();
    let start = json!({"event": "start", "start": {"encoding": "pcm16", "sample_rate": 16000}});
    socket.send(Message::text(start.to_string())).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("call {id}: no greeting within 30 s"));
        match message {
            Some(Ok(m)) if m.to_text().is_ok_and(|t| t.contains("\"transcript\"")) => break,
            Some(Ok(_)) => {}
            other => panic!("call {id}: the connection ended first: {other:?}"),
        }
    }
    (id, socket)
}

/// Reads call `id` through `base` until `done` holds for it (at most `within`); returns it and when.
async fn call_until(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    id: CallId,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let answer = http
            .get(format!("{base}/api/v1/calls/{id}"))
            .bearer_auth(key)
            .send()
            .await;
        if let Ok(answer) = answer
            && let Ok(call) = answer.json::<Value>().await
            && done(&call)
        {
            return (call, started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "call {id} not as expected within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn the_fleet_spreads_calls_and_a_killed_nodes_call_is_ended_as_node_lost() {
    if Command::new("haproxy").arg("-v").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and no haproxy: scripts/setup.sh installs it"
        );
        eprintln!("SKIPPED: no haproxy (scripts/setup.sh installs it)");
        return;
    }
    let Some(models) = provisioned_models() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some((base_url, admin, schema)) = postgres_schema(&runtime, "sb_fleet_") else {
        return;
    };
    let redis_port = free_ports(0);
    let mut redis = Command::new("redis-server")
        .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server (scripts/setup.sh installs it)");
    let port = free_ports(2);
    let prometheus_port = free_ports(1);
    let alertmanager_port = prometheus_port + 1;
    let dir = tempfile::tempdir().unwrap();
    // The shipped rules, with the node-down alert's one-minute hold cut to two seconds so the test
    // need not wait a minute for it.
    let shipped = std::fs::read_to_string(alert_rules()).unwrap();
    let node_down = shipped.find("alert: SwitchboardNodeDown").unwrap();
    let hold = node_down + shipped[node_down..].find("for: 1m").unwrap();
    let rules = dir.path().join("alerts.yaml");
    std::fs::write(
        &rules,
        format!("{}for: 2s{}", &shipped[..hold], &shipped[hold + 7..]),
    )
    .unwrap();
    let env = [
        (
            "SWITCHBOARD_BIN",
            env!("CARGO_BIN_EXE_switchboard").to_owned(),
        ),
        ("MODELS_DIR", models.display().to_string()),
        (
            "DATABASE_URL",
            format!(
                "{}?options=-c%20search_path%3D{schema}",
                base_url.trim_end_matches('?')
            ),
        ),
        ("REDIS_HOST", "127.0.0.1".to_owned()),
        ("REDIS_PORT", redis_port.to_string()),
        ("NODE_LEASE_MS", LEASE_MS.to_string()),
        ("FLEET_NODES", "2".to_owned()),
        ("FLEET_PORT", port.to_string()),
        ("FLEET_PROMETHEUS_PORT", prometheus_port.to_string()),
        ("FLEET_ALERTMANAGER_PORT", alertmanager_port.to_string()),
        ("FLEET_SCRAPE_INTERVAL", "1s".to_owned()),
        ("FLEET_ALERT_RULES", rules.display().to_string()),
    ];
    let up = fleet(dir.path(), &env, "up");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert!(
            up.status.success(),
            "fleet up failed: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        let stdout = String::from_utf8(up.stdout.clone()).unwrap();
        let last = stdout.lines().last().unwrap_or_default().to_owned();
        let (base, key) = last.split_once(' ').expect("`URL KEY` as the last line");
        assert_eq!(base, format!("http://127.0.0.1:{port}"));
        runtime.block_on(calls_through_the_fleet(
            base,
            key,
            dir.path(),
            Ports {
                fleet: port,
                redis: redis_port,
                alertmanager: alertmanager_port,
            },
        ));
        let status = fleet(dir.path(), &env, "status");
        let status = String::from_utf8_lossy(&status.stdout).into_owned();
        assert!(status.contains("stopped"), "one node was killed: {status}");
    }));
    let down = fleet(dir.path(), &env, "down");
    let after = fleet(dir.path(), &env, "status");
    let _ = redis.kill();
    let _ = redis.wait();
    runtime
        .block_on(admin.execute_raw(&format!("DROP SCHEMA {schema} CASCADE")))
        .unwrap();
    if let Err(panic) = result {
        eprintln!("{}", String::from_utf8_lossy(&up.stderr));
        std::panic::resume_unwind(panic);
    }
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let after = String::from_utf8_lossy(&after.stdout).into_owned();
    assert_eq!(
        after.lines().filter(|l| l.ends_with("stopped")).count(),
        5,
        "down leaves nothing running (2 nodes, HAProxy, Prometheus, Alertmanager): {after}"
    );
    for port in [port, prometheus_port, alertmanager_port] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} is closed after down"
        );
    }
}

/// The fleet's ports: the load balancer's (node i listens on the one i after it), Redis' and
/// Alertmanager's.
struct Ports {
    fleet: u16,
    redis: u16,
    alertmanager: u16,
}

async fn calls_through_the_fleet(base: &str, key: &str, dir: &Path, ports: Ports) {
    let port = ports.fleet;
    let http = reqwest::Client::new();
    let shared = LiveState::connect(&RedisConfig::plain("127.0.0.1", ports.redis), "fleet-test")
        .await
        .unwrap();
    // Four calls at once through the load balancer (the node with the fewest connections takes the
    // next) are carried two by each node; each ends through the API, whichever node the request reaches.
    let mut live = Vec::new();
    for _ in 0..4 {
        live.push(live_call(&http, base, key).await);
    }
    let mut nodes = std::collections::BTreeMap::<String, usize>::new();
    for (id, _) in &live {
        let node = shared
            .owner(*id)
            .await
            .unwrap()
            .expect("registered to its node");
        *nodes.entry(node).or_default() += 1;
    }
    assert_eq!(
        nodes.values().copied().collect::<Vec<_>>(),
        [2, 2],
        "{nodes:?}"
    );
    for (id, socket) in live {
        let ended = http
            .delete(format!("{base}/api/v1/calls/{id}"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert!(ended.status().is_success(), "{}", ended.status());
        call_until(&http, base, key, id, Duration::from_secs(30), |c| {
            c["status"] == "ended"
        })
        .await;
        drop(socket);
    }

    // A call live on one node; that node is killed.
    let (id, _socket) = live_call(&http, base, key).await;
    // A node is named after its host and port; node i listens on the load balancer's port + i.
    let carrier = shared.owner(id).await.unwrap().unwrap();
    let node = carrier.rsplit(':').next().unwrap().parse::<u16>().unwrap() - port;
    let pid = std::fs::read_to_string(dir.join(format!("node{node}.pid"))).unwrap();
    assert!(common::signal(pid.trim(), "KILL"));
    let killed = Instant::now();
    let (call, settled) = call_until(&http, base, key, id, Duration::from_secs(20), |c| {
        c["status"] == "ended"
    })
    .await;
    assert_eq!(call["end_reason"], "node_lost", "{call}");
    assert_eq!(
        shared.owner(id).await.unwrap(),
        None,
        "registration removed"
    );
    eprintln!(
        "node {node} killed mid-call: its call ended as node_lost {} ms later (lease {LEASE_MS} ms)",
        settled.as_millis()
    );
    assert!(
        settled < Duration::from_millis(2 * LEASE_MS),
        "settled {} ms after the kill",
        settled.as_millis()
    );
    // Prometheus sees the node gone and Alertmanager receives the node-down alert for it.
    let instance = format!("127.0.0.1:{}", port + node);
    let alerts = format!("http://127.0.0.1:{}/api/v2/alerts", ports.alertmanager);
    loop {
        let received: Value = http
            .get(&alerts)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let down = received.as_array().unwrap().iter().any(|a| {
            a["labels"]["alertname"] == "SwitchboardNodeDown" && a["labels"]["instance"] == instance
        });
        if down {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(40),
            "Alertmanager has no SwitchboardNodeDown for {instance}: {received}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "Alertmanager had SwitchboardNodeDown for {instance} {} ms after the kill (scrape 1 s, hold 2 s)",
        killed.elapsed().as_millis()
    );
    // The load balancer sends new calls to the node still up.
    let (after, mut socket) = live_call(&http, base, key).await;
    assert_ne!(
        shared.owner(after).await.unwrap().as_deref(),
        Some(carrier.as_str())
    );
    // Every metric the shipped alert rules and dashboard read is on the survivor's /metrics.
    let exposed = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for metric in rule_metrics().into_iter().chain(dashboard_metrics()) {
        assert!(
            exposed.lines().any(|l| l.starts_with(&metric)),
            "{metric} is in deploy/ (alerts or dashboard) but not on /metrics"
        );
    }

    // SIGTERM on the survivor: its /ready says 503 at once (the load balancer stops sending it
    // anything), its call is ended politely, then it exits.
    let survivor = 3 - node;
    let pid = std::fs::read_to_string(dir.join(format!("node{survivor}.pid"))).unwrap();
    let pid = pid.trim().to_owned();
    assert!(common::signal(&pid, "TERM"));
    let ready = format!("http://127.0.0.1:{}/ready", port + survivor);
    let asked = Instant::now();
    while http.get(&ready).send().await.unwrap().status() != 503 {
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "/ready still 200 after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("the call was not ended within 30 s of SIGTERM");
        match message {
            Some(Ok(m)) if m.to_text().is_ok_and(|t| t.contains("\"hangup\"")) => break,
            Some(Ok(_)) => {}
            other => panic!("the call's connection ended without a hang-up: {other:?}"),
        }
    }
    while common::signal(&pid, "0") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node did not exit"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Switchboard metrics in `text` (a histogram by its name, without `_bucket`).
fn metric_names(text: &str, found: &mut std::collections::BTreeSet<String>) {
    for (at, _) in text.match_indices("switchboard_") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        found.insert(name.trim_end_matches("_bucket").to_owned());
    }
}

/// The metrics the shipped Grafana dashboard's queries read.
fn dashboard_metrics() -> std::collections::BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/switchboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut found = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            metric_names(target["expr"].as_str().unwrap(), &mut found);
        }
    }
    assert!(found.len() >= 10, "{found:?}");
    found
}

/// The shipped alert rules, checked by promtool when it is installed (always under CI).
fn alert_rules() -> std::path::PathBuf {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/alerts.yaml");
    match Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
    {
        Ok(checked) => assert!(
            checked.status.success(),
            "promtool refuses the rules: {}{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        ),
        Err(_) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and no promtool: scripts/setup.sh installs it (package prometheus)"
            );
            eprintln!("promtool not installed: the rules' syntax is not checked");
        }
    }
    rules
}

/// The Switchboard metrics the alert rules read.
fn rule_metrics() -> std::collections::BTreeSet<String> {
    let text = std::fs::read_to_string(alert_rules()).unwrap();
    let mut found = std::collections::BTreeSet::new();
    // The expressions only: not comments, summaries or descriptions.
    let expressions = text.lines().filter(|l| {
        let l = l.trim_start();
        !l.starts_with('#') && !l.starts_with("summary:") && !l.starts_with("description:")
    });
    for line in expressions {
        metric_names(line, &mut found);
    }
    assert!(found.len() >= 8, "{found:?}");
    found
}
