//! Connecting, migrating, and telling `/ready` whether the schema is current.

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, Row};
use switchboard_core::config::DatabaseTarget;

use crate::StoreError;

/// The schema's migrations, compiled into the binary: `(version, description, SQL)`, named and read as
/// sqlx's `migrate!` would read `migrations/` (`0001_calls_and_turns.sql` is version 1, "calls and
/// turns"), so that databases migrated by earlier builds see the same versions and checksums. Listed by
/// hand rather than by the macro, which costs every build a second, host-side compile of sqlx's drivers.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "calls and turns",
        include_str!("../migrations/0001_calls_and_turns.sql"),
    ),
    (
        2,
        "knowledge",
        include_str!("../migrations/0002_knowledge.sql"),
    ),
    (
        3,
        "call summaries",
        include_str!("../migrations/0003_call_summaries.sql"),
    ),
    (
        4,
        "access and audit",
        include_str!("../migrations/0004_access_and_audit.sql"),
    ),
    (
        5,
        "recordings",
        include_str!("../migrations/0005_recordings.sql"),
    ),
    (
        6,
        "answered by",
        include_str!("../migrations/0006_answered_by.sql"),
    ),
    (
        7,
        "turn sources",
        include_str!("../migrations/0007_turn_sources.sql"),
    ),
];

#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> futures_util::future::BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async { Ok(migrations()) })
    }
}

fn migrations() -> Vec<Migration> {
    MIGRATIONS
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                sql.starts_with("-- no-transaction"),
            )
        })
        .collect()
}

/// Which engine is behind the pool; SQL is shared, a few pragmas are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Whether the database schema matches this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationState {
    /// Every migration of this build is applied.
    Current,
    /// These migration versions are not applied yet.
    Pending(Vec<i64>),
}

/// A pool on the configured database.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    display: String,
    /// DATA_KEY_FILE's keys: callers' numbers, contexts and claims are sealed with them.
    pub(crate) keys: Option<std::sync::Arc<crate::DataKeys>>,
    /// Where calls keep what they could not write (`DATA_DIR/spool`), when configured.
    pub(crate) spool: Option<std::sync::Arc<crate::spool::Spool>>,
    /// DATABASE_READ_URL's pool: the list endpoints read there.
    read: Option<ReadReplica>,
    /// PostgreSQL's `statement_timeout` on every connection, the replica's too.
    statement_timeout: Option<Duration>,
}

/// A read-only replica's pool and its URL for logs.
#[derive(Debug, Clone)]
struct ReadReplica {
    pool: AnyPool,
    display: String,
}

/// PostgreSQL's `statement_timeout` when none is given (DATABASE_STATEMENT_TIMEOUT_MS's default).
pub(crate) const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

impl Database {
    /// Opens the configured database (creating the SQLite file and its directory if needed), with
    /// PostgreSQL statements limited to [`DEFAULT_STATEMENT_TIMEOUT`].
    pub async fn connect(target: &DatabaseTarget) -> Result<Self, StoreError> {
        Self::connect_with(target, Some(DEFAULT_STATEMENT_TIMEOUT)).await
    }

    /// Opens the configured database; on PostgreSQL every connection gets `statement_timeout` (`None`:
    /// statements run as long as they take), so a lock held elsewhere or a runaway query fails with a
    /// clear error instead of holding a call's write or an API request. SQLite waits for its lock at most
    /// 5 s (`busy_timeout`) either way.
    pub async fn connect_with(
        target: &DatabaseTarget,
        statement_timeout: Option<Duration>,
    ) -> Result<Self, StoreError> {
        install_default_drivers();
        let display = target.display_url();
        let backend = match target {
            DatabaseTarget::Sqlite { path } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                Backend::Sqlite
            }
            DatabaseTarget::Postgres { .. } => Backend::Postgres,
        };
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(5));
        if backend == Backend::Sqlite {
            // One writer at a time is SQLite's rule; WAL lets readers proceed meanwhile, and foreign keys
            // are off by default in SQLite, so turn them on for every connection.
            options = options.max_connections(4).after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA foreign_keys = ON")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        } else {
            options = limit_statements(options.max_connections(16), statement_timeout);
        }
        let pool = options
            .connect(&target.url())
            .await
            .map_err(|source| StoreError::Connect {
                target: display.clone(),
                source,
            })?;
        Ok(Self {
            pool,
            backend,
            display,
            keys: None,
            spool: None,
            read: None,
            statement_timeout,
        })
    }

    /// This database, with the list endpoints reading from `target` (DATABASE_READ_URL, a streaming
    /// replica). The replica is connected on first use, so one that is down at start-up delays nothing;
    /// a read it cannot serve goes to the primary.
    pub fn with_read_replica(mut self, target: &DatabaseTarget) -> Result<Self, StoreError> {
        let display = target.display_url();
        let options = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(2))
            .max_connections(8);
        let pool = limit_statements(options, self.statement_timeout)
            .connect_lazy(&target.url())
            .map_err(|source| StoreError::Connect {
                target: display.clone(),
                source,
            })?;
        self.read = Some(ReadReplica { pool, display });
        Ok(self)
    }

    /// Whether the read replica is one (`pg_is_in_recovery()`): `None` without DATABASE_READ_URL, an
    /// error when it cannot be reached. For the start-up log and tests.
    pub async fn read_replica_in_recovery(&self) -> Result<Option<bool>, StoreError> {
        let Some(read) = &self.read else {
            return Ok(None);
        };
        let row = sqlx::query("SELECT pg_is_in_recovery()")
            .fetch_one(&read.pool)
            .await
            .map_err(|source| StoreError::Connect {
                target: read.display.clone(),
                source,
            })?;
        Ok(Some(crate::calls::column::<bool>(
            &row,
            0,
            "asking the read replica whether it is one",
        )?))
    }

    /// Runs the read-only query `read` on the read replica when there is one, and on the primary when
    /// there is none or the replica cannot serve it (down, starting, unreachable): a list is never lost
    /// to the replica, only delayed by its connection timeout.
    pub(crate) async fn on_replica<T, F, Fut>(&self, read: F) -> Result<T, sqlx::Error>
    where
        F: Fn(AnyPool) -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        if let Some(replica) = &self.read {
            match read(replica.pool.clone()).await {
                Err(e) if replica_unavailable(&e) => tracing::warn!(
                    replica = %replica.display,
                    error = %e,
                    "the read replica cannot serve a list; reading the primary"
                ),
                done => return done,
            }
        }
        read(self.pool.clone()).await
    }

    /// This database, sealing callers' numbers, contexts and claims with `keys` from now on (and opening
    /// what they sealed before).
    pub fn with_data_keys(mut self, keys: std::sync::Arc<crate::DataKeys>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The engine behind this pool.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database URL with any password redacted.
    pub fn display_url(&self) -> &str {
        &self.display
    }

    /// Applies every pending migration; a no-op when the schema is current.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = Migrator::new(Embedded).await?;
        if self.backend == Backend::Sqlite {
            migrator.run(&self.pool).await?;
            return Ok(());
        }
        // A migration may rewrite a large table: it runs on a connection of its own without the
        // statement timeout, which is then closed rather than returned to the pool.
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::query("connecting for migrations"))?
            .detach();
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut conn)
            .await
            .map_err(StoreError::query(
                "lifting the statement timeout for migrations",
            ))?;
        let ran = migrator.run(&mut conn).await;
        let _ = sqlx::Connection::close(conn).await;
        ran?;
        Ok(())
    }

    /// Compares applied migrations with this build's; for `/ready` and `switchboard migrate --check`.
    pub async fn migration_state(&self) -> Result<MigrationState, StoreError> {
        let applied: HashSet<i64> =
            match sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(&self.pool)
                .await
            {
                Ok(rows) => rows
                    .iter()
                    .map(|r| r.try_get::<i64, _>(0))
                    .collect::<Result<_, _>>()
                    .map_err(StoreError::query("reading applied migrations"))?,
                // No bookkeeping table yet: nothing has been applied.
                Err(sqlx::Error::Database(_)) => HashSet::new(),
                Err(e) => return Err(StoreError::query("reading applied migrations")(e)),
            };
        let pending: Vec<i64> = MIGRATIONS
            .iter()
            .map(|&(version, _, _)| version)
            .filter(|v| !applied.contains(v))
            .collect();
        Ok(if pending.is_empty() {
            MigrationState::Current
        } else {
            MigrationState::Pending(pending)
        })
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(StoreError::query("ping"))
    }

    /// Closes every connection, waiting for queries in flight.
    pub async fn close(&self) {
        if let Some(read) = &self.read {
            read.pool.close().await;
        }
        self.pool.close().await;
    }

    /// Whether the connection to a PostgreSQL server is encrypted (`sslmode` in DATABASE_URL); `None` for
    /// the embedded SQLite file, which has no connection to encrypt.
    pub async fn connection_encrypted(&self) -> Result<Option<bool>, StoreError> {
        if self.backend == Backend::Sqlite {
            return Ok(None);
        }
        let row = sqlx::query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::query("reading the connection's encryption"))?;
        Ok(Some(match row {
            Some(row) => {
                crate::calls::column::<bool>(&row, 0, "reading the connection's encryption")?
            }
            None => false,
        }))
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// PostgreSQL pool options that set `statement_timeout` on each new connection (0: none).
fn limit_statements(options: AnyPoolOptions, timeout: Option<Duration>) -> AnyPoolOptions {
    let ms = timeout.map_or(0, |t| t.as_millis());
    options.after_connect(move |conn, _| {
        Box::pin(async move {
            sqlx::query(&format!("SET statement_timeout = {ms}"))
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    })
}

/// An error that says the replica could not serve the read at all (rather than the query being wrong):
/// no connection, TLS or protocol trouble, or PostgreSQL's "operator intervention" class 57 (shutting
/// down, starting up, in recovery and not accepting connections yet).
fn replica_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| code.starts_with("57")),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

#[doc(hidden)]
impl Database {
    /// Runs one statement as is; for test set-up (creating schemas), never with user input.
    pub async fn execute_raw(&self, sql: &str) -> Result<(), StoreError> {
        sqlx::raw_sql(sql)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(StoreError::query("raw statement"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file in `migrations/` is listed, under the version and description sqlx reads from its name,
    /// with the file's exact text (the checksum an already migrated database compares against).
    #[test]
    fn the_embedded_list_is_the_migrations_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<(i64, String, String)> = std::fs::read_dir(&dir)
            .expect("migrations directory")
            .map(|entry| {
                let path = entry.expect("directory entry").path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .expect("file name");
                let (version, rest) = name.split_once('_').expect("<version>_<description>.sql");
                (
                    version.parse().expect("numeric version"),
                    rest.trim_end_matches(".sql").replace('_', " "),
                    std::fs::read_to_string(&path).expect("readable migration"),
                )
            })
            .collect();
        files.sort();
        let listed: Vec<(i64, String, String)> = migrations()
            .into_iter()
            .map(|m| (m.version, m.description.into_owned(), m.sql.into_owned()))
            .collect();
        assert_eq!(listed, files);
    }
}
