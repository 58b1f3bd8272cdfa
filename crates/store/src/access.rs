//! API keys and the audit log. A key's secret is never stored: only its SHA-256, which is enough for a
//! high-entropy random secret (no password stretching needed), compared in constant time.

use std::time::SystemTime;

use crate::calls::{column, millis, time};
use crate::{Database, StoreError};

/// A stored API key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The public part of the key (`sb_<id>_...`).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// `admin`, `supervisor` or `viewer`.
    pub role: String,
    /// SHA-256 of the secret part, hex.
    pub hash: String,
    /// When it was made.
    pub created_at: SystemTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<SystemTime>,
}

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When.
    pub at: SystemTime,
    /// Who (`key:<id>`, `jwt:<subject>`, `cli`).
    pub actor: String,
    /// What (`call.create`, `call.end`, `key.create`, ...).
    pub action: String,
    /// On what (a call id, a key id).
    pub target: Option<String>,
    /// More, as JSON text.
    pub detail: Option<String>,
}

impl Database {
    /// Stores a new key's hash.
    pub async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, role, hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(key.id.clone())
        .bind(key.name.clone())
        .bind(key.role.clone())
        .bind(key.hash.clone())
        .bind(millis(key.created_at))
        .execute(self.pool())
        .await
        .map_err(StoreError::query("storing an API key"))?;
        Ok(())
    }

    /// The key with this id, revoked or not.
    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        const OP: &str = "reading an API key";
        let row = sqlx::query(
            "SELECT id, name, role, hash, created_at, revoked_at FROM api_keys WHERE id = $1",
        )
        .bind(id.to_owned())
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::query(OP))?;
        row.map(|r| {
            Ok(ApiKeyRecord {
                id: column(&r, 0, OP)?,
                name: column(&r, 1, OP)?,
                role: column(&r, 2, OP)?,
                hash: column(&r, 3, OP)?,
                created_at: time(column(&r, 4, OP)?),
                revoked_at: column::<Option<i64>>(&r, 5, OP)?.map(time),
            })
        })
        .transpose()
    }

    /// Revokes a key; false when there is no such active key.
    pub async fn revoke_api_key(&self, id: &str, at: SystemTime) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(millis(at))
                .bind(id.to_owned())
                .execute(self.pool())
                .await
                .map_err(StoreError::query("revoking an API key"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Appends to the audit log.
    pub async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(uuid_v7())
        .bind(millis(entry.at))
        .bind(entry.actor.clone())
        .bind(entry.action.clone())
        .bind(entry.target.clone())
        .bind(entry.detail.clone())
        .execute(self.pool())
        .await
        .map_err(StoreError::query("writing the audit log"))?;
        Ok(())
    }

    /// The newest audit entries, newest first.
    pub async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        const OP: &str = "reading the audit log";
        let rows = self
            .on_replica(|pool| async move {
                sqlx::query(
                    "SELECT at, actor, action, target, detail FROM audit_log ORDER BY at DESC, id DESC LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&pool)
                .await
            })
            .await
            .map_err(StoreError::query(OP))?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: time(column(r, 0, OP)?),
                    actor: column(r, 1, OP)?,
                    action: column(r, 2, OP)?,
                    target: column(r, 3, OP)?,
                    detail: column(r, 4, OP)?,
                })
            })
            .collect()
    }
}

/// A time-ordered unique id for rows without a natural key.
fn uuid_v7() -> String {
    switchboard_core::CallId::new().to_string()
}
