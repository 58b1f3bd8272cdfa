//! Storage failures.

/// A storage failure, with the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Could not reach or open the database.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// The database, password redacted.
        target: String,
        /// Why.
        source: sqlx::Error,
    },
    /// Could not create the SQLite file's directory.
    #[error("cannot create database directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Applying migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("{operation} failed: {source}")]
    Query {
        /// What we were doing.
        operation: &'static str,
        /// Why.
        source: sqlx::Error,
    },
    /// Redis (shared live state) failed or did not answer.
    #[error("{operation} failed: {detail}")]
    Redis {
        /// What we were doing.
        operation: &'static str,
        /// Why.
        detail: String,
    },
    /// The spool directory or one of its files could not be read or written.
    #[error("the spool at {path} failed: {source}")]
    Spool {
        /// The file or directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The spool holds as much as it may.
    #[error("the spool in {dir} is full ({max_bytes} bytes): the database has been away too long")]
    SpoolFull {
        /// The spool directory.
        dir: String,
        /// Its bound.
        max_bytes: u64,
    },
    /// The database did not answer in time.
    #[error("{operation} got no answer in time")]
    Timeout {
        /// What we were doing.
        operation: &'static str,
    },
    /// This database has no spool.
    #[error("no spool is configured")]
    NoSpool,
    /// A stored row holds a value this build does not understand.
    #[error("stored {what} is invalid: {detail}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// Why.
        detail: String,
    },
}

impl StoreError {
    pub(crate) fn query(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| StoreError::Query { operation, source }
    }

    /// Whether retrying the same operation may succeed (the database was unreachable or busy).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Connect { .. } | StoreError::Timeout { .. } => true,
            StoreError::Query { source, .. } => matches!(
                source,
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
            ),
            _ => false,
        }
    }
}
