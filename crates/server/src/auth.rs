//! Who is calling the API and what they may do. Two kinds of credentials: API keys made by
//! `switchboard keys create` (stored as a SHA-256 of the key, looked up by their public id) and JWT bearer
//! tokens signed with JWT_SECRET (HS256) or by the holder of JWT_PUBLIC_KEY_FILE's key (RS256/ES256), with
//! the role in a `role` claim, and the issuer and audience JWT_ISSUER and JWT_AUDIENCE name when set.
//! Roles are ordered: admin > supervisor > viewer.
//!
//! Before credentials are checked, requests are counted per source address
//! (RATE_LIMIT_PER_SOURCE_PER_MINUTE); a failed sign-in is audited with the source and the reason, never
//! the credential.

use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use switchboard_core::Config;
use switchboard_store::{ApiKeyRecord, AuditEntry, Database};

use crate::{ApiError, AppState};

/// What a caller of the API may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read calls, transcripts, claims.
    Viewer,
    /// Also place, end and talk on calls.
    Supervisor,
    /// Also manage keys and read the audit log.
    Admin,
}

impl Role {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "supervisor" => Ok(Role::Supervisor),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role '{}': expected admin, supervisor or viewer",
                other.chars().take(32).collect::<String>()
            )),
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `key:<id>` or `jwt:<subject>`, for the audit log.
    pub actor: String,
    /// What they may do.
    pub role: Role,
}

impl Principal {
    /// Refuses with 403 unless the role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} role; your credentials have {}",
                needed.as_str(),
                self.role.as_str()
            )))
        }
    }
}

/// A newly made API key: the full key (shown once) and what is stored.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// `sb_<id>_<secret>`: give this to the client; it cannot be shown again.
    pub key: String,
    /// The stored record (hash only).
    pub record: ApiKeyRecord,
}

/// Makes a key with 192 random bits of secret.
pub fn generate_api_key(name: &str, role: Role) -> Result<NewApiKey, String> {
    let mut id = [0u8; 6];
    let mut secret = [0u8; 24];
    getrandom::fill(&mut id).map_err(|e| format!("no randomness: {e}"))?;
    getrandom::fill(&mut secret).map_err(|e| format!("no randomness: {e}"))?;
    let id = hex::encode(id);
    let key = format!("sb_{id}_{}", hex::encode(secret));
    Ok(NewApiKey {
        record: ApiKeyRecord {
            id,
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            hash: hash_key(&key),
            created_at: SystemTime::now(),
            revoked_at: None,
        },
        key,
    })
}

fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Equal-length strings compared without an early exit, so timing tells nothing about the hash.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The claims a JWT must carry.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
}

/// Checks credentials against the key table, the configured JWT keys and an OpenID Connect provider.
#[derive(Clone)]
pub struct Authenticator {
    database: Database,
    jwt: Vec<(DecodingKey, Validation)>,
    /// An OpenID Connect provider's tokens (OIDC_ISSUER).
    oidc: Option<std::sync::Arc<crate::oidc::Oidc>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("jwt_keys", &self.jwt.len())
            .field("oidc", &self.oidc.is_some())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// API keys from `database`, JWTs from JWT_SECRET and JWT_PUBLIC_KEY_FILE.
    pub fn from_config(config: &Config, database: Database) -> Result<Self, String> {
        let mut jwt = Vec::new();
        // A configured issuer or audience must be in the token, not merely match when present.
        let mut required = vec!["exp"];
        if config.auth.jwt_issuer.is_some() {
            required.push("iss");
        }
        if config.auth.jwt_audience.is_some() {
            required.push("aud");
        }
        let validation = |algorithm| {
            let mut validation = Validation::new(algorithm);
            validation.set_required_spec_claims(&required);
            if let Some(issuer) = &config.auth.jwt_issuer {
                validation.set_issuer(&[issuer]);
            }
            if let Some(audience) = &config.auth.jwt_audience {
                validation.set_audience(&[audience]);
            }
            validation
        };
        if let Some(secret) = &config.auth.jwt_secret {
            jwt.push((
                DecodingKey::from_secret(secret.expose().as_bytes()),
                validation(Algorithm::HS256),
            ));
        }
        if let Some(path) = &config.auth.jwt_public_key_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read JWT_PUBLIC_KEY_FILE {}: {e}", path.display()))?;
            let key = if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                (key, validation(Algorithm::RS256))
            } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                (key, validation(Algorithm::ES256))
            } else {
                return Err(format!(
                    "JWT_PUBLIC_KEY_FILE {} is neither an RSA nor an EC P-256 public key in PEM",
                    path.display()
                ));
            };
            jwt.push(key);
        }
        let oidc = config
            .auth
            .oidc
            .clone()
            .map(|oidc| std::sync::Arc::new(crate::oidc::Oidc::new(oidc)));
        Ok(Self {
            database,
            jwt,
            oidc,
        })
    }

    /// The principal `token` (an API key or a JWT) stands for.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, ApiError> {
        let token = token.trim();
        if let Some(rest) = token.strip_prefix("sb_") {
            let id = rest.split('_').next().unwrap_or_default();
            let record = self.database.api_key(id).await?;
            return match record {
                Some(r)
                    if r.revoked_at.is_none() && constant_time_eq(&r.hash, &hash_key(token)) =>
                {
                    let role = r.role.parse().map_err(ApiError::internal)?;
                    Ok(Principal {
                        actor: format!("key:{id}"),
                        role,
                    })
                }
                _ => Err(ApiError::unauthorized("unknown or revoked API key")),
            };
        }
        if token.matches('.').count() == 2 {
            if self.jwt.is_empty() && self.oidc.is_none() {
                return Err(ApiError::unauthorized(
                    "bearer tokens are not accepted here: set JWT_SECRET, JWT_PUBLIC_KEY_FILE or OIDC_ISSUER, or use an API key",
                ));
            }
            let mut last = String::new();
            for (key, validation) in &self.jwt {
                match jsonwebtoken::decode::<Claims>(token, key, validation) {
                    Ok(data) => {
                        return Ok(Principal {
                            actor: format!("jwt:{}", data.claims.sub),
                            role: data.claims.role,
                        });
                    }
                    Err(e) => {
                        last = match e.kind() {
                            jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                                "it is for another audience (JWT_AUDIENCE names the one accepted)"
                                    .to_owned()
                            }
                            jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                                "it is from another issuer (JWT_ISSUER)".to_owned()
                            }
                            _ => e.to_string(),
                        }
                    }
                }
            }
            // Not one of ours: the identity provider's, or nobody's.
            if let Some(oidc) = &self.oidc {
                return oidc.verify(token).await;
            }
            return Err(ApiError::unauthorized(format!(
                "invalid bearer token: {last}"
            )));
        }
        Err(ApiError::unauthorized(
            "unrecognised credentials: send `Authorization: Bearer <API key or JWT>`",
        ))
    }

    /// Writes an audit entry; a failure is logged, and the mutation it records has already happened.
    pub async fn audit(
        &self,
        who: &Principal,
        action: &str,
        target: Option<String>,
        detail: Option<String>,
    ) {
        let entry = AuditEntry {
            at: SystemTime::now(),
            actor: who.actor.clone(),
            action: action.to_owned(),
            target,
            detail,
        };
        if let Err(e) = self.database.audit(&entry).await {
            tracing::error!(error = %e, action, "cannot write the audit log");
        }
    }
}

/// The credentials of a request: `Authorization: Bearer ...` or `X-API-Key: ...`.
pub fn credentials(headers: &HeaderMap) -> Option<String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(value) = header("authorization") {
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    header("x-api-key")
}

/// Where a request came from: the peer's address, when the server was started with it (`serve`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source(pub(crate) Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| peer.ip()),
        ))
    }
}

/// Signs a request in: counts it against its source's limit, checks `token`, audits a failure, and
/// counts it against the credential's limit.
pub(crate) async fn sign_in(
    state: &AppState,
    source: Source,
    token: Option<String>,
    missing: &'static str,
) -> Result<Principal, ApiError> {
    if let Some(ip) = source.0 {
        state
            .source_limiter
            .check(&format!("source:{ip}"), state.live.as_ref())
            .await?;
    }
    let token = token.ok_or_else(|| ApiError::unauthorized(missing))?;
    let principal = match state.auth.authenticate(&token).await {
        Ok(principal) => principal,
        Err(e) => {
            if e.status == 401 {
                metrics::counter!("switchboard_sign_in_failed_total").increment(1);
                let who = Principal {
                    actor: source
                        .0
                        .map_or_else(|| "source:unknown".to_owned(), |ip| format!("source:{ip}")),
                    role: Role::Viewer,
                };
                state
                    .auth
                    .audit(&who, "sign_in.failed", None, Some(e.message.clone()))
                    .await;
            }
            return Err(e);
        }
    };
    state
        .limiter
        .check(&principal.actor, state.live.as_ref())
        .await?;
    Ok(principal)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Ok(source) = Source::from_request_parts(parts, state).await;
        sign_in(
            state,
            source,
            credentials(&parts.headers),
            "credentials required: `Authorization: Bearer <API key or JWT>`",
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_only_their_hash_is_kept() {
        let a = generate_api_key("a", Role::Viewer).unwrap();
        let b = generate_api_key("b", Role::Viewer).unwrap();
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with(&format!("sb_{}_", a.record.id)));
        assert_eq!(a.key.len(), 3 + 12 + 1 + 48);
        assert!(!a.record.hash.contains(&a.key[16..]));
        assert_eq!(a.record.hash, hash_key(&a.key));
    }

    #[test]
    fn roles_are_ordered_and_parsed() {
        assert!(Role::Admin > Role::Supervisor && Role::Supervisor > Role::Viewer);
        assert_eq!("supervisor".parse::<Role>(), Ok(Role::Supervisor));
        assert!("root".parse::<Role>().is_err());
        let viewer = Principal {
            actor: "t".into(),
            role: Role::Viewer,
        };
        assert!(viewer.require(Role::Viewer).is_ok());
        assert_eq!(viewer.require(Role::Admin).unwrap_err().status, 403);
    }

    #[test]
    fn hashes_compare_in_constant_time_and_exactly() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
