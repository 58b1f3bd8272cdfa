//! REDIS_SENTINELS: the live state finds its master through Redis Sentinel and follows it through a
//! failover. The test runs its own master, replica and Sentinel (`redis-server --sentinel`) on free
//! loopback ports, kills the master and watches the nodes move to the promoted replica.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchboard_core::CallId;
use switchboard_core::config::{RedisConfig, SentinelConfig};
use switchboard_store::{CallCommand, Delivery, LiveState};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One process of the test's own, killed when dropped.
struct Server(Child);

impl Server {
    fn start(port: u16, args: &[&str]) -> Self {
        let child = Command::new("redis-server")
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/setup.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self(child)
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn query<T: redis::FromRedisValue>(port: u16, command: &mut redis::Cmd) -> T {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    command.query_async(&mut c).await.unwrap()
}

/// Waits up to `limit` for `check`, polling every 100 ms.
async fn until(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_behind_sentinels_follow_the_master_through_a_failover() {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no redis-server: scripts/setup.sh installs it"
        );
        eprintln!("skipped: no redis-server (scripts/setup.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (master_port, replica_port, sentinel_port) = (free_port(), free_port(), free_port());
    // A master's full sync to its replica writes an RDB file even with saving off: into the test's
    // directory, not the source tree.
    let dir_text = dir.path().to_str().unwrap();
    let plain = [
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir_text,
    ];
    let master_port_text = master_port.to_string();
    let mut master = Server::start(
        master_port,
        &[
            &[
                "--port",
                master_port_text.as_str(),
                "--dbfilename",
                "master.rdb",
            ],
            &plain[..],
        ]
        .concat(),
    );
    let replica_port_text = replica_port.to_string();
    let _replica = Server::start(
        replica_port,
        &[
            &[
                "--port",
                replica_port_text.as_str(),
                "--dbfilename",
                "replica.rdb",
            ],
            &plain[..],
            &["--replicaof", "127.0.0.1", master_port_text.as_str()],
        ]
        .concat(),
    );
    // Sentinel rewrites its configuration file, so it gets one of its own in the test's directory.
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {sentinel_port}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor calls 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds calls 1000\n\
             sentinel failover-timeout calls 10000\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let _sentinel = Server::start(sentinel_port, &[conf.to_str().unwrap(), "--sentinel"]);
    // A failover needs a replica the Sentinel knows and that holds the master's data.
    until(
        Duration::from_secs(30),
        "the Sentinel sees the replica",
        async || {
            let replicas: Vec<std::collections::HashMap<String, String>> = query(
                sentinel_port,
                redis::cmd("SENTINEL").arg("replicas").arg("calls"),
            )
            .await;
            replicas.iter().any(|r| {
                r.get("port") == Some(&replica_port_text)
                    && r.get("master-link-status").map(String::as_str) == Some("ok")
            })
        },
    )
    .await;

    let config = RedisConfig {
        sentinel: Some(SentinelConfig {
            sentinels: vec![("127.0.0.1".into(), sentinel_port)],
            master: "calls".into(),
            password: None,
        }),
        ..RedisConfig::plain("", 6379)
    };
    let one = LiveState::connect(&config, "node-one").await.unwrap();
    let two = LiveState::connect(&config, "node-two").await.unwrap();
    assert!(
        one.describe()
            .starts_with(&format!("redis://127.0.0.1:{master_port} ")),
        "{}",
        one.describe()
    );
    let before = CallId::new();
    one.call_started(before).await.unwrap();
    let mut listener = one.listen().await.unwrap();
    until(
        Duration::from_secs(10),
        "the write reaches the replica",
        async || {
            let owner: Option<String> = query(
                replica_port,
                redis::cmd("HGET")
                    .arg(switchboard_store::LIVE_CALLS_KEY)
                    .arg(before.to_string()),
            )
            .await;
            owner.is_some()
        },
    )
    .await;

    master.kill();
    let killed = Instant::now();
    // The nodes go on sending commands as they would during calls; those sent before the replica is
    // promoted fail, and the failures send them to the Sentinel.
    let after = CallId::new();
    let mut failed = 0;
    until(
        Duration::from_secs(40),
        "node one writes to the new master",
        async || {
            let ok = one.call_started(after).await.is_ok();
            failed += usize::from(!ok);
            ok
        },
    )
    .await;
    let moved = killed.elapsed();
    eprintln!(
        "master killed; node one wrote to the promoted replica {} ms later, {failed} commands failed meanwhile",
        moved.as_millis()
    );
    assert!(
        one.describe()
            .starts_with(&format!("redis://127.0.0.1:{replica_port} ")),
        "{}",
        one.describe()
    );
    // What was written before the failover is there, and the other node reads the same.
    assert_eq!(
        one.owner(before).await.unwrap().as_deref(),
        Some("node-one")
    );
    until(
        Duration::from_secs(10),
        "node two reads the new master",
        async || two.owner(after).await.ok().flatten().as_deref() == Some("node-one"),
    )
    .await;

    // The subscription on the dead master is lost; subscribing again reaches the new master, and
    // commands from the other node arrive.
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), listener.next())
            .await
            .expect("the lost subscription ends"),
        None
    );
    let mut listener = one.listen().await.unwrap();
    assert_eq!(
        two.send_command(after, CallCommand::Hangup).await.unwrap(),
        Delivery::Delivered {
            node: "node-one".into()
        }
    );
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), listener.next())
            .await
            .unwrap(),
        Some((CallCommand::Hangup, after))
    );
    // Nothing moves when the Sentinels name the master in use.
    assert!(!one.find_master().await.unwrap());
}
