//! Access tokens of an OpenID Connect provider (`OIDC_ISSUER`, `OIDC_AUDIENCE`, `OIDC_ROLE_CLAIM`).
//!
//! The provider's signing keys are found as a client finds them: `.well-known/openid-configuration`
//! under the issuer names the `jwks_uri`, whose key set is kept for an hour. A token naming a key not in
//! the set (the provider rotated its keys) makes the set be read again, at most [`REFETCHES`] times in
//! [`REFETCH_WINDOW`], so a flood of forged key ids cannot turn into a flood of requests to the provider.
//! Tokens must be signed with RSA (RS256/384/512, PS256/384/512) or ECDSA (ES256/384) by a key of the
//! set whose type fits, come from the issuer, name the audience, carry an expiry, and hold a Switchboard
//! role in the configured claim.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use switchboard_core::config::OidcConfig;
use tokio::sync::Mutex;

use crate::ApiError;
use crate::auth::{Principal, Role};

/// How long a key set is used before it is read again.
const KEYS_FOR: Duration = Duration::from_secs(3_600);
/// Reads of the key set for tokens naming unknown keys, at most, per [`REFETCH_WINDOW`].
const REFETCHES: usize = 3;
const REFETCH_WINDOW: Duration = Duration::from_secs(60);
/// Longest wait for the provider.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the provider's keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider did not answer, or not with what OpenID Connect Discovery says it must.
    #[error("the identity provider at {url}: {detail}")]
    Provider {
        /// What was asked for.
        url: String,
        /// What went wrong.
        detail: String,
    },
}

#[derive(Debug, Default)]
struct Keys {
    set: Option<JwkSet>,
    fetched: Option<Instant>,
    /// When the set was last read for tokens naming keys it did not hold.
    refetches: std::collections::VecDeque<Instant>,
}

/// Checks access tokens of one provider.
#[derive(Debug)]
pub struct Oidc {
    config: OidcConfig,
    http: reqwest::Client,
    keys: Mutex<Keys>,
}

impl Oidc {
    /// A checker for `config`'s provider; its keys are read at the first token.
    pub fn new(config: OidcConfig) -> Self {
        Self {
            config,
            http: reqwest::Client::builder()
                .timeout(PROVIDER_TIMEOUT)
                .build()
                .unwrap_or_default(),
            keys: Mutex::new(Keys::default()),
        }
    }

    /// The issuer as written in tokens (no trailing slash added or removed).
    fn issuer(&self) -> &str {
        self.config.issuer.as_str().trim_end_matches('/')
    }

    async fn get_json(&self, url: &str) -> Result<Value, OidcError> {
        let failed = |detail: String| OidcError::Provider {
            url: url.to_owned(),
            detail,
        };
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("answered {}", response.status())));
        }
        response.json().await.map_err(|e| failed(e.to_string()))
    }

    /// Discovery, then the key set.
    async fn fetch(&self) -> Result<JwkSet, OidcError> {
        let discovery = format!("{}/.well-known/openid-configuration", self.issuer());
        let document = self.get_json(&discovery).await?;
        // OpenID Connect Discovery 1.0, 4.3: the document must name the issuer it was asked about.
        let named = document["issuer"].as_str().unwrap_or_default();
        if named.trim_end_matches('/') != self.issuer() {
            return Err(OidcError::Provider {
                url: discovery,
                detail: format!("it names issuer {named:?}, not OIDC_ISSUER"),
            });
        }
        let jwks_uri = document["jwks_uri"]
            .as_str()
            .ok_or_else(|| OidcError::Provider {
                url: discovery.clone(),
                detail: "no jwks_uri".into(),
            })?
            .to_owned();
        let set = self.get_json(&jwks_uri).await?;
        serde_json::from_value(set).map_err(|e| OidcError::Provider {
            url: jwks_uri,
            detail: format!("not a JWK set: {e}"),
        })
    }

    /// The key `kid` names: from the set in hand, or from the set read again when it is old or does not
    /// hold that key (within the [`REFETCHES`] budget).
    async fn key(&self, kid: Option<&str>) -> Result<Option<jsonwebtoken::jwk::Jwk>, ApiError> {
        let mut keys = self.keys.lock().await;
        let find = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            // A token without a key id is checked against a set of one key only.
            None => (set.keys.len() == 1).then(|| set.keys[0].clone()),
        };
        let stale = keys.fetched.is_none_or(|at| at.elapsed() > KEYS_FOR);
        let found = keys.set.as_ref().and_then(find);
        keys.refetches.retain(|at| at.elapsed() < REFETCH_WINDOW);
        let refetch = !stale && found.is_none() && keys.refetches.len() < REFETCHES;
        if refetch {
            keys.refetches.push_back(Instant::now());
        }
        if stale || refetch {
            match self.fetch().await {
                Ok(set) => {
                    keys.set = Some(set);
                    keys.fetched = Some(Instant::now());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the identity provider's keys");
                    keys.fetched = Some(Instant::now());
                    if keys.set.is_none() {
                        return Err(ApiError::unavailable(
                            "identity_provider",
                            format!("the identity provider's keys cannot be read now: {e}"),
                        ));
                    }
                }
            }
        }
        Ok(keys.set.as_ref().and_then(find))
    }

    /// The principal a provider's `token` stands for.
    pub async fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let refused = |why: String| ApiError::unauthorized(format!("invalid bearer token: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|e| refused(e.to_string()))?;
        let family_rsa = matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        );
        let family_ec = matches!(header.alg, Algorithm::ES256 | Algorithm::ES384);
        if !family_rsa && !family_ec {
            return Err(refused(format!(
                "{:?} is not accepted from an identity provider (RSA or ECDSA signatures only)",
                header.alg
            )));
        }
        let jwk = self.key(header.kid.as_deref()).await?.ok_or_else(|| {
            refused("signed by a key the identity provider does not publish".into())
        })?;
        let fits = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => family_rsa,
            AlgorithmParameters::EllipticCurve(_) => family_ec,
            _ => false,
        };
        if !fits {
            return Err(refused(
                "its algorithm does not fit the key it names".into(),
            ));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| refused(e.to_string()))?;
        let mut validation = Validation::new(header.alg);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[self.issuer(), self.config.issuer.as_str()]);
        validation.set_audience(&[&self.config.audience]);
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidAudience => refused(
                    "it is for another audience (OIDC_AUDIENCE names the one accepted)".into(),
                ),
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                    refused("it is from another issuer (OIDC_ISSUER)".into())
                }
                _ => refused(e.to_string()),
            })?
            .claims;
        let role = role_in(&claims, &self.config.role_claim).ok_or_else(|| {
            ApiError::forbidden(format!(
                "the token's {} claim names no Switchboard role (admin, supervisor or viewer)",
                self.config.role_claim.join(".")
            ))
        })?;
        let subject = claims["sub"].as_str().unwrap_or("unknown");
        Ok(Principal {
            actor: format!("oidc:{subject}"),
            role,
        })
    }
}

/// The highest Switchboard role named at `path` in `claims`: a string, or a list of strings.
fn role_in(claims: &Value, path: &[String]) -> Option<Role> {
    let value = path.iter().try_fold(claims, |v, segment| v.get(segment))?;
    let names: Vec<&str> = match value {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    names
        .into_iter()
        .filter_map(|name| name.to_ascii_lowercase().parse::<Role>().ok())
        .max()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_role_is_read_from_a_string_a_list_or_a_nested_claim() {
        let path = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            role_in(&json!({"role": "Supervisor"}), &path("role")),
            Some(Role::Supervisor)
        );
        assert_eq!(
            role_in(
                &json!({"realm_access": {"roles": ["offline_access", "viewer", "admin"]}}),
                &path("realm_access.roles")
            ),
            Some(Role::Admin)
        );
        assert_eq!(role_in(&json!({"role": "owner"}), &path("role")), None);
        assert_eq!(role_in(&json!({"roles": 3}), &path("roles")), None);
        assert_eq!(role_in(&json!({}), &path("realm_access.roles")), None);
    }
}
