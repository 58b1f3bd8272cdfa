//! Faults with real processes, loopback only, each printing what it lost (0): PostgreSQL cut mid-call
//! behind a proxy, Redis killed mid-call, and a node that starts with calls waiting in its spool.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use switchboard_core::config::{DatabaseTarget, RedisConfig};
use switchboard_core::{CallId, Secret};
use switchboard_store::{CallFilter, Database, LiveState};

mod common;
use common::calls::{Case, call_and_check, check_stored, check_stored_in_sqlite, postgres_schema};
use common::{provisioned_models, speech_corpus_installed};

/// A TCP proxy in front of PostgreSQL that can be cut: while cut, the open connections are closed and
/// new ones are closed as soon as they arrive, as a database host dropping off the network would.
struct CuttableProxy {
    port: u16,
    cut: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl CuttableProxy {
    fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (cut_flag, registry) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cut_flag.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                let mut open = registry.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { port, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_database_cut_mid_call_for_ten_seconds_loses_no_turn() {
    if !speech_corpus_installed() {
        return;
    }
    let Some(models) = provisioned_models() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some((base, admin, schema)) = postgres_schema(&runtime, "sb_cut_") else {
        return;
    };
    let direct = reqwest::Url::parse(&base).unwrap();
    let proxy = Arc::new(CuttableProxy::start(format!(
        "{}:{}",
        direct.host_str().unwrap(),
        direct.port().unwrap_or(5432)
    )));
    let mut through = direct.clone();
    through.set_host(Some("127.0.0.1")).unwrap();
    through.set_port(Some(proxy.port)).unwrap();
    let search_path = format!("?options=-c%20search_path%3D{schema}");
    let url = format!("{}{search_path}", through.as_str().trim_end_matches('?'));
    let stored_url = format!("{}{search_path}", base.trim_end_matches('?'));
    // The fault: once the greeting and the caller's first words are stored (read straight from the
    // database, not through the proxy), the database goes away for 10 s, through the agent's answer and
    // the caller's second turn, and comes back before the goodbye.
    let outage = {
        let (proxy, watched) = (proxy.clone(), stored_url.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let db = runtime
                .block_on(Database::connect(&DatabaseTarget::Postgres {
                    url: Secret::new(watched),
                }))
                .unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
            let started = loop {
                let lines = runtime.block_on(async {
                    let calls = db
                        .list_calls(&CallFilter {
                            limit: 1,
                            ..CallFilter::default()
                        })
                        .await
                        .ok()?;
                    Some(db.turns(calls.first()?.id).await.ok()?.len())
                });
                if lines.is_some_and(|n| n >= 2) {
                    break true;
                }
                if std::time::Instant::now() > deadline {
                    break false;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            };
            runtime.block_on(db.close());
            if started {
                proxy.cut();
                std::thread::sleep(std::time::Duration::from_secs(10));
            }
            proxy.restore();
            started
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let report = call_and_check(
        dir.path(),
        &models,
        &Case {
            database_url: Some(&url),
            ..Case::default()
        },
    );
    assert!(
        outage.join().unwrap(),
        "the call never stored its first lines"
    );
    runtime.block_on(async {
        check_stored(
            DatabaseTarget::Postgres {
                url: Secret::new(stored_url.clone()),
            },
            &report,
            "agent_ended",
        )
        .await;
        // Every line once, in order: numbered 1..n without a gap or a repeat.
        let db = Database::connect(&DatabaseTarget::Postgres {
            url: Secret::new(stored_url),
        })
        .await
        .unwrap();
        let id: CallId = report["call_id"].as_str().unwrap().parse().unwrap();
        let turns = db.turns(id).await.unwrap();
        let seqs: Vec<i64> = turns.iter().map(|t| t.seq).collect();
        assert_eq!(seqs, (1..=turns.len() as i64).collect::<Vec<_>>());
        eprintln!(
            "database cut for 10 s mid-call: {} lines stored, 0 lost",
            turns.len()
        );
        db.close().await;
    });
    runtime
        .block_on(admin.execute_raw(&format!("DROP SCHEMA {schema} CASCADE")))
        .unwrap();
}

/// A `redis-server` of the test's own on a free loopback port, without persistence: killed, its data is
/// gone, as after a crash.
struct OwnRedis {
    port: u16,
    child: std::process::Child,
}

impl OwnRedis {
    fn start(port: u16) -> Option<Self> {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Some(Self { port, child })
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn redis_killed_mid_call_loses_nothing_but_live_events_while_it_is_away() {
    if !speech_corpus_installed() {
        return;
    }
    let Some(models) = provisioned_models() else {
        return;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Some(mut redis) = OwnRedis::start(port) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no redis-server: scripts/setup.sh installs it"
        );
        eprintln!("skipped: no redis-server (scripts/setup.sh installs it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("switchboard.db");
    // The fault: once the caller's first words are stored, Redis is killed (its data lost) and comes back
    // empty 5 s later, through the agent's answer and the caller's second turn.
    let outage = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        let mut stored = None;
        while stored.is_none_or(|n| n < 2) {
            if std::time::Instant::now() > deadline {
                return (redis, None);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            if !db_path.exists() {
                continue;
            }
            stored = runtime.block_on(async {
                let db = Database::connect(&DatabaseTarget::Sqlite {
                    path: db_path.clone(),
                })
                .await
                .ok()?;
                let calls = db
                    .list_calls(&CallFilter {
                        limit: 1,
                        ..CallFilter::default()
                    })
                    .await
                    .ok()?;
                let lines = db.turns(calls.first()?.id).await.ok()?.len();
                db.close().await;
                Some(lines)
            });
        }
        redis.kill();
        std::thread::sleep(std::time::Duration::from_secs(5));
        let redis = OwnRedis::start(port).unwrap();
        (redis, stored)
    });
    let port_text = port.to_string();
    let report = call_and_check(
        dir.path(),
        &models,
        &Case {
            redis_host: Some("127.0.0.1"),
            env: &[("REDIS_PORT", &port_text)],
            ..Case::default()
        },
    );
    let (redis, before) = outage.join().unwrap();
    let before = before.expect("the call never stored its first lines");
    check_stored_in_sqlite(dir.path(), &report, "agent_ended");

    // Live events resumed on the new Redis: the lines stored after it came back, and the hang-up; and the
    // call is no longer registered as live.
    let id: CallId = report["call_id"].as_str().unwrap().parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let live = LiveState::connect(
            &RedisConfig::plain("127.0.0.1", redis.port),
            "test",
        )
        .await
        .unwrap();
        let events = live.events(id).await.unwrap();
        let seqs: Vec<i64> = events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .filter(|e| e["event"] == "transcript")
            .filter_map(|e| e["seq"].as_i64())
            .collect();
        assert!(
            seqs.last().is_some_and(|&s| s > before as i64),
            "no line stored after the outage reached the new Redis: {events:#?}"
        );
        assert!(
            events.last().unwrap().contains(r#""event":"hangup""#),
            "{events:#?}"
        );
        assert_eq!(live.owner(id).await.unwrap(), None);
        eprintln!(
            "redis killed mid-call for 5 s: call completed, 0 lines lost, {} live events after it came back",
            events.len()
        );
    });
}

/// What calls could not write before they ended waits in the node's spool (`DATA_DIR/spool`): a node
/// started on it writes it to the database, in order, nothing twice, and empties the spool.
#[test]
fn a_node_started_with_calls_in_its_spool_writes_them_once_in_order() {
    use std::time::{Duration, Instant, SystemTime};
    use switchboard_core::{CallDirection, Speaker};
    use switchboard_store::{NewCall, SpooledCall, SpooledEnd, SpooledLine};

    let dir = tempfile::tempdir().unwrap();
    let target = DatabaseTarget::Sqlite {
        path: dir.path().join("switchboard.db"),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let call = CallId::new();
    runtime.block_on(async {
        let db = Database::connect(&target)
            .await
            .unwrap()
            .with_spool(dir.path().join("spool"));
        db.migrate().await.unwrap();
        db.insert_call(&NewCall {
            id: call,
            direction: CallDirection::Inbound,
            from_number: None,
            to_number: None,
            started_at: SystemTime::now(),
            status: "active",
            context: None,
        })
        .await
        .unwrap();
        let now = SystemTime::now();
        // The greeting reached the database; the rest of the call did not before it ended.
        db.store_turn(call, 1, Speaker::Agent, "Hello, how can I help?", now, now)
            .await
            .unwrap();
        let line =
            |seq, speaker, text: &str| SpooledLine::new(seq, speaker, text.to_owned(), now, now);
        db.spool_call(
            call,
            SpooledCall {
                lines: vec![
                    line(1, Speaker::Agent, "Hello, how can I help?"),
                    line(2, Speaker::Caller, "A tree fell on my car."),
                    line(3, Speaker::Agent, "I'm sorry to hear that."),
                ],
                end: Some(SpooledEnd::new(now, "caller_hung_up")),
                ..SpooledCall::default()
            },
        )
        .await
        .unwrap();
        db.close().await;
    });
    let no_models = tempfile::tempdir().unwrap();
    let server = common::start_server_with(dir.path(), no_models.path(), &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (turns, record) = loop {
        // The record first: the spool writes a call's lines before its end, so once the end is read,
        // every line is there to read after it.
        let read = runtime.block_on(async {
            let db = Database::connect(&target).await.unwrap();
            let record = db.call(call).await.unwrap().unwrap();
            let turns = db.turns(call).await.unwrap();
            db.close().await;
            (turns, record)
        });
        if read.1.end_reason.is_some() || Instant::now() > deadline {
            break read;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    common::stop(server);
    assert_eq!(record.end_reason.as_deref(), Some("caller_hung_up"));
    let stored: Vec<(i64, &str)> = turns.iter().map(|t| (t.seq, t.text.as_str())).collect();
    assert_eq!(
        stored,
        [
            (1, "Hello, how can I help?"),
            (2, "A tree fell on my car."),
            (3, "I'm sorry to hear that.")
        ]
    );
    let left = std::fs::read_dir(dir.path().join("spool")).unwrap().count();
    assert_eq!(left, 0, "the spool is empty");
    eprintln!("spool written at start-up: 2 lines and the end, 0 lost, none twice");
}
