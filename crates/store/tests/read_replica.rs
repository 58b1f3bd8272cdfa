//! DATABASE_READ_URL on a real PostgreSQL streaming replica: the test makes its own primary (initdb) and
//! a replica of it (pg_basebackup -R) on free loopback ports, run as the `postgres` user. Lists read the
//! replica (a call written while its replay is paused is not listed, but read by id from the primary),
//! writes go to the primary, and with the replica stopped lists read the primary.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use switchboard_core::config::DatabaseTarget;
use switchboard_core::{CallDirection, CallId, Secret};
use switchboard_store::{CallFilter, Database, NewCall};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// PostgreSQL's server programs (Debian keeps them out of PATH).
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop()
}

/// Runs a PostgreSQL program as the `postgres` user (the server refuses to run as root).
fn as_postgres(bin: &Path, program: &str, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(program))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server of the test's own, stopped (immediately) when dropped.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    running: bool,
}

impl Cluster {
    fn start(bin: &Path, data: PathBuf, port: u16) -> Self {
        let socket_dir = data.parent().unwrap().display().to_string();
        let options = format!("-p {port} -c listen_addresses=127.0.0.1 -k {socket_dir}");
        let log = data.with_extension("log").display().to_string();
        as_postgres(
            bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        Self {
            bin: bin.to_owned(),
            data,
            port,
            running: true,
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn stop(&mut self) {
        if self.running {
            as_postgres(
                &self.bin,
                "pg_ctl",
                &["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"],
            );
            self.running = false;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
                .output();
        }
    }
}

async fn raw(url: &str, sql: &str) {
    let db = Database::connect(&DatabaseTarget::Postgres {
        url: Secret::new(url.to_owned()),
    })
    .await
    .unwrap();
    db.execute_raw(sql).await.unwrap();
    db.close().await;
}

fn new_call() -> NewCall {
    NewCall {
        id: CallId::new(),
        direction: CallDirection::Inbound,
        from_number: Some("+15550100".into()),
        to_number: None,
        started_at: SystemTime::now(),
        status: "active",
        context: None,
    }
}

async fn listed(db: &Database) -> Vec<CallId> {
    db.list_calls(&CallFilter {
        limit: 100,
        ..CallFilter::default()
    })
    .await
    .unwrap()
    .into_iter()
    .map(|c| c.id)
    .collect()
}

#[tokio::test]
async fn lists_read_a_streaming_replica_and_the_primary_when_it_is_down() {
    let runnable = postgres_bin().filter(|_| {
        Command::new("id")
            .args(["-u", "postgres"])
            .output()
            .is_ok_and(|o| o.status.success())
            && Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
    });
    let Some(bin) = runnable else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: PostgreSQL's server programs and root (to run them as postgres) are needed"
        );
        eprintln!("SKIPPED: needs /usr/lib/postgresql/*/bin, a postgres user and root");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    assert!(
        Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success()
    );
    let primary_dir = dir.path().join("primary");
    let replica_dir = dir.path().join("replica");
    // initdb's default pg_hba.conf trusts replication connections from loopback.
    as_postgres(
        &bin,
        "initdb",
        &[
            "-D",
            primary_dir.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ],
    );
    let mut primary = Cluster::start(&bin, primary_dir, free_port());
    let port = primary.port.to_string();
    as_postgres(
        &bin,
        "pg_basebackup",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-D",
            replica_dir.to_str().unwrap(),
            "-R",
            "-X",
            "stream",
            "--no-sync",
        ],
    );
    let mut replica = Cluster::start(&bin, replica_dir, free_port());

    let db = Database::connect(&DatabaseTarget::Postgres {
        url: Secret::new(primary.url()),
    })
    .await
    .unwrap();
    db.migrate().await.unwrap();
    let db = db
        .with_read_replica(&DatabaseTarget::Postgres {
            url: Secret::new(replica.url()),
        })
        .unwrap();
    assert_eq!(db.read_replica_in_recovery().await.unwrap(), Some(true));

    // A call written to the primary is listed once the replica has replayed it.
    let first = new_call();
    db.insert_call(&first).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !listed(&db).await.contains(&first.id) {
        assert!(
            Instant::now() < deadline,
            "the replica never listed the call"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // With the replica's replay paused, a new call is on the primary (read by id) but not listed: the
    // list comes from the replica.
    raw(&replica.url(), "SELECT pg_wal_replay_pause()").await;
    let second = new_call();
    db.insert_call(&second).await.unwrap();
    assert!(db.call(second.id).await.unwrap().is_some());
    assert_eq!(listed(&db).await, vec![first.id]);
    raw(&replica.url(), "SELECT pg_wal_replay_resume()").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while listed(&db).await.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "replay resumed but the call never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The replica goes away: lists read the primary.
    replica.stop();
    let third = new_call();
    db.insert_call(&third).await.unwrap();
    let ids = listed(&db).await;
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(db.read_replica_in_recovery().await.is_err());
    db.close().await;
    primary.stop();
}
