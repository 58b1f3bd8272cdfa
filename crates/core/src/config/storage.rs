//! Where state is kept: the system of record (SQLite or PostgreSQL, its data keys) and Redis.

use std::path::{Path, PathBuf};

use url::Url;

use super::{ConfigError, Reader, settings};
use crate::secret::{REDACTED, Secret};

/// Which database holds the system of record.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// Connection target.
    pub target: DatabaseTarget,
    /// A read-only replica for the list endpoints (DATABASE_READ_URL); always PostgreSQL.
    pub read_target: Option<DatabaseTarget>,
    /// Apply pending migrations at start-up.
    pub auto_migrate: bool,
    /// PostgreSQL's `statement_timeout` on every connection; `None`: off.
    pub statement_timeout: Option<std::time::Duration>,
    /// Keys sealing callers' data at rest; `None`: plain text.
    pub data_key_file: Option<PathBuf>,
}

/// A database to connect to.
#[derive(Debug, Clone)]
pub enum DatabaseTarget {
    /// Embedded SQLite file.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL server, by URL (credentials included, so it is a secret).
    Postgres {
        /// `postgres://user:password@host:port/db`.
        url: Secret,
    },
}

impl DatabaseTarget {
    /// A connection URL for sqlx.
    pub fn url(&self) -> String {
        match self {
            DatabaseTarget::Sqlite { path } => format!("sqlite://{}?mode=rwc", path.display()),
            DatabaseTarget::Postgres { url } => url.expose().to_owned(),
        }
    }

    /// The URL with any password replaced, for logs and `/ready`.
    pub fn display_url(&self) -> String {
        match self {
            DatabaseTarget::Sqlite { path } => format!("sqlite://{}", path.display()),
            DatabaseTarget::Postgres { url } => redact_url_password(url.expose()),
        }
    }
}

/// Redis connection settings.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Password.
    pub password: Option<Secret>,
    /// TLS to the server (`rediss://`).
    pub tls: bool,
    /// The CA that signed the server's certificate, when not one the system trusts.
    pub ca_file: Option<PathBuf>,
    /// Sentinels that name the current master; when set, `host` and `port` are not used.
    pub sentinel: Option<SentinelConfig>,
}

impl RedisConfig {
    /// One Redis at `host:port`, no password, no TLS.
    pub fn plain(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            password: None,
            tls: false,
            ca_file: None,
            sentinel: None,
        }
    }
}

/// Redis behind Sentinels: the master is whichever they name, asked again after a failover.
#[derive(Debug, Clone)]
pub struct SentinelConfig {
    /// The Sentinels, host and port each.
    pub sentinels: Vec<(String, u16)>,
    /// The name they monitor the master under.
    pub master: String,
    /// The Sentinels' own password.
    pub password: Option<Secret>,
}

pub(super) fn database_config(
    r: &Reader<'_>,
    data_dir: &Path,
) -> Result<DatabaseConfig, ConfigError> {
    use settings::*;
    let target = database_target(r, data_dir)?;
    let read_target = match r.text(&DATABASE_READ_URL) {
        None => None,
        Some(url) => {
            let postgres = (url.starts_with("postgres://") || url.starts_with("postgresql://"))
                && Url::parse(&url).is_ok();
            if !postgres || !matches!(target, DatabaseTarget::Postgres { .. }) {
                return Err(r.invalid(&DATABASE_READ_URL));
            }
            Some(DatabaseTarget::Postgres {
                url: Secret::new(url),
            })
        }
    };
    Ok(DatabaseConfig {
        target,
        read_target,
        auto_migrate: r.bool(&DATABASE_AUTO_MIGRATE)?,
        statement_timeout: match r.int(&DATABASE_STATEMENT_TIMEOUT_MS, 0..=3_600_000)? {
            0 => None,
            ms => Some(std::time::Duration::from_millis(ms as u64)),
        },
        data_key_file: r.text(&DATA_KEY_FILE).map(PathBuf::from),
    })
}

pub(super) fn redis_config(r: &Reader<'_>) -> Result<Option<RedisConfig>, ConfigError> {
    use settings::*;
    let sentinel = match r.text(&REDIS_SENTINELS) {
        None => None,
        Some(list) => Some(SentinelConfig {
            sentinels: host_ports(&list).ok_or_else(|| r.invalid(&REDIS_SENTINELS))?,
            master: r.required_text(&REDIS_SENTINEL_MASTER)?,
            password: r.text(&REDIS_SENTINEL_PASSWORD).map(Secret::new),
        }),
    };
    let host = match (r.host_opt(&REDIS_HOST)?, &sentinel) {
        (Some(host), _) => host,
        (None, Some(_)) => String::new(),
        (None, None) => return Ok(None),
    };
    Ok(Some(RedisConfig {
        host,
        port: r.int(&REDIS_PORT, 1..=65_535)? as u16,
        password: r.text(&REDIS_PASSWORD).map(Secret::new),
        tls: r.bool(&REDIS_TLS)?,
        ca_file: r.text(&REDIS_CA_FILE).map(PathBuf::from),
        sentinel,
    }))
}

/// `host:port, host:port, ...` (an IPv6 address in brackets); `None` when any item is not one, or there
/// is none.
fn host_ports(list: &str) -> Option<Vec<(String, u16)>> {
    let items = list
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (host, port) = item.rsplit_once(':')?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
            super::reader::is_host(host).then(|| (host.to_owned(), port))
        })
        .collect::<Option<Vec<_>>>()?;
    (!items.is_empty()).then_some(items)
}

fn database_target(r: &Reader<'_>, data_dir: &Path) -> Result<DatabaseTarget, ConfigError> {
    use settings::*;
    if let Some(url) = r.text(&DATABASE_URL) {
        return if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Url::parse(&url).map_err(|_| r.invalid(&DATABASE_URL))?;
            Ok(DatabaseTarget::Postgres {
                url: Secret::new(url),
            })
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err(r.invalid(&DATABASE_URL));
            }
            Ok(DatabaseTarget::Sqlite {
                path: PathBuf::from(path),
            })
        } else {
            Err(r.invalid(&DATABASE_URL))
        };
    }
    let Some(host) = r.host_opt(&POSTGRES_HOST)? else {
        return Ok(DatabaseTarget::Sqlite {
            path: data_dir.join("switchboard.db"),
        });
    };
    let port = r.int(&POSTGRES_PORT, 1..=65_535)?;
    let db = r.required_text(&POSTGRES_DB)?;
    let user = r.required_text(&POSTGRES_USER)?;
    let mut url = Url::parse("postgres://localhost").map_err(|_| r.invalid(&POSTGRES_HOST))?;
    url.set_host(Some(&host))
        .map_err(|_| r.invalid(&POSTGRES_HOST))?;
    url.set_port(Some(port as u16))
        .map_err(|_| r.invalid(&POSTGRES_PORT))?;
    url.set_username(&user)
        .map_err(|_| r.invalid(&POSTGRES_USER))?;
    if let Some(password) = r.text(&POSTGRES_PASSWORD) {
        url.set_password(Some(&password))
            .map_err(|_| r.invalid(&POSTGRES_PASSWORD))?;
    }
    url.set_path(&db);
    Ok(DatabaseTarget::Postgres {
        url: Secret::new(url.to_string()),
    })
}

fn redact_url_password(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password only fails for URLs that cannot have one, which this one has.
            let _ = parsed.set_password(Some(REDACTED));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => REDACTED.to_owned(),
    }
}
