//! Shared live state on the Redis server at 127.0.0.1:6379 (TEST_REDIS_HOST overrides): the live-call
//! registry and the events stream. Skipped with a message when Redis is unreachable, except under CI=true.
#![allow(clippy::unwrap_used)]

use switchboard_core::CallId;
use switchboard_core::config::RedisConfig;
use switchboard_store::LiveState;

async fn live(node: &str) -> Option<LiveState> {
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

#[tokio::test]
async fn nodes_see_which_node_carries_a_call_and_its_events() {
    let Some(a) = live("node-a").await else {
        return;
    };
    let b = live("node-b").await.unwrap();
    let call = CallId::new();
    assert_eq!(b.owner(call).await.unwrap(), None);
    a.call_started(call).await.unwrap();
    assert_eq!(b.owner(call).await.unwrap().as_deref(), Some("node-a"));
    for text in ["hello", "my car was hit"] {
        a.publish(
            call,
            &format!(r#"{{"event":"transcript","text":"{text}"}}"#),
        )
        .await
        .unwrap();
    }
    let seen = b.events(call).await.unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].contains("my car was hit"));
    a.call_ended(call).await.unwrap();
    assert_eq!(b.owner(call).await.unwrap(), None);
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error() {
    let config = RedisConfig::plain("127.0.0.1", 1);
    let err = LiveState::connect(&config, "n")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("connecting to Redis"), "{err}");
}

#[tokio::test]
async fn rate_limit_counters_are_shared_between_nodes() {
    let Some(a) = live("node-a").await else {
        return;
    };
    let b = live("node-b").await.unwrap();
    let key = format!("test:{}", CallId::new());
    // A day-long window: the three counts cannot straddle a window boundary in practice.
    let window = std::time::Duration::from_secs(86_400);
    assert_eq!(a.count(&key, window).await.unwrap(), 1);
    assert_eq!(b.count(&key, window).await.unwrap(), 2);
    assert_eq!(a.count(&key, window).await.unwrap(), 3);
    assert_eq!(a.count(&format!("{key}-other"), window).await.unwrap(), 1);
}

#[tokio::test]
async fn one_calls_events_are_erased_old_ones_trimmed_and_a_lock_held_by_one_node() {
    let Some(a) = live("node-a").await else {
        return;
    };
    let b = live("node-b").await.unwrap();
    let (forgotten, kept) = (CallId::new(), CallId::new());
    for call in [forgotten, kept, forgotten] {
        a.publish(
            call,
            r#"{"event":"transcript","text":"my number is 415 555 0100"}"#,
        )
        .await
        .unwrap();
    }
    assert_eq!(b.erase_events(forgotten).await.unwrap(), 2);
    assert!(a.events(forgotten).await.unwrap().is_empty());
    assert_eq!(a.events(kept).await.unwrap().len(), 1);
    assert_eq!(b.erase_events(forgotten).await.unwrap(), 0);
    // Trimming what is older than an hour leaves what was just published (other tests share the stream,
    // so nothing newer is trimmed here).
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3_600);
    a.trim_events_before(hour_ago).await.unwrap();
    assert_eq!(a.events(kept).await.unwrap().len(), 1);
    // One node at a time: the lock is the first taker's (until it lapses, which Redis does).
    let lock = format!("test-{}", CallId::new());
    let ttl = std::time::Duration::from_secs(60);
    assert!(a.try_lock(&lock, ttl).await.unwrap());
    assert!(!b.try_lock(&lock, ttl).await.unwrap());
    assert!(!a.try_lock(&lock, ttl).await.unwrap());
    assert!(b.try_lock(&format!("{lock}-other"), ttl).await.unwrap());
}

#[tokio::test]
async fn a_single_use_value_put_on_one_node_is_taken_once_on_another() {
    let Some(a) = live("node-a").await else {
        return;
    };
    let b = live("node-b").await.unwrap();
    let name = format!("test:{}", CallId::new());
    a.put_once(&name, "call 42", std::time::Duration::from_secs(60))
        .await
        .unwrap();
    // Two nodes racing for it: exactly one gets it.
    let (first, second) = tokio::join!(a.take_once(&name), b.take_once(&name));
    let mut got = [first.unwrap(), second.unwrap()];
    got.sort();
    assert_eq!(got, [None, Some("call 42".to_owned())]);
}

/// A private CA and a server certificate for 127.0.0.1 it signed, made with openssl: (CA, cert, key).
fn private_ca(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let path = |name: &str| dir.join(name);
    std::fs::write(
        path("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for args in [
        [
            &["req", "-x509"][..],
            &ec[..],
            &["-days", "1", "-subj", "/CN=test CA", "-keyout"],
        ]
        .concat(),
        [
            &["req"][..],
            &ec[..],
            &["-subj", "/CN=127.0.0.1", "-keyout"],
        ]
        .concat(),
    ] {
        let (key, out) = if args.contains(&"-x509") {
            (path("ca.key"), path("ca.crt"))
        } else {
            (path("server.key"), path("server.csr"))
        };
        let made = std::process::Command::new("openssl")
            .args(&args)
            .arg(&key)
            .arg("-out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    let signed = std::process::Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-CAcreateserial", "-in"])
        .arg(path("server.csr"))
        .arg("-CA")
        .arg(path("ca.crt"))
        .arg("-CAkey")
        .arg(path("ca.key"))
        .arg("-extfile")
        .arg(path("ext"))
        .arg("-out")
        .arg(path("server.crt"))
        .output()
        .unwrap();
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    (path("ca.crt"), path("server.crt"), path("server.key"))
}

/// REDIS_TLS with REDIS_CA_FILE: the live state works over TLS with a server whose certificate a
/// private CA signed; without that CA the server is not trusted.
#[tokio::test]
async fn live_state_reaches_a_tls_redis_trusting_a_private_ca() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--tls-ca-cert-file")
        .arg(&ca)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-server is installed (make setup)");
    let stdout = server.stdout.take().unwrap();
    let ready = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("Ready to accept connections"));
    assert!(ready, "redis-server did not start with TLS");

    let config = |ca_file| RedisConfig {
        tls: true,
        ca_file,
        ..RedisConfig::plain("127.0.0.1", port)
    };
    let live = LiveState::connect(&config(Some(ca.clone())), "tls-node")
        .await
        .unwrap();
    let call = CallId::new();
    live.call_started(call).await.unwrap();
    assert_eq!(live.owner(call).await.unwrap().as_deref(), Some("tls-node"));
    let untrusted = LiveState::connect(&config(None), "tls-node").await;
    assert!(
        untrusted.is_err(),
        "a server signed by an unknown CA is refused"
    );
    let _ = server.kill();
    let _ = server.wait();
}
