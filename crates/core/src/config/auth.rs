//! How API callers prove who they are: JWT keys, an OpenID Connect provider, and the rate limits.

use std::path::PathBuf;

use url::Url;

use super::{ConfigError, Reader, settings};
use crate::secret::Secret;

/// How API callers prove who they are, beyond the API keys kept in the database.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// HS256 secret for JWT bearer tokens.
    pub jwt_secret: Option<Secret>,
    /// RS256/ES256 public key file for JWT bearer tokens.
    pub jwt_public_key_file: Option<PathBuf>,
    /// The `iss` accepted JWTs must carry.
    pub jwt_issuer: Option<String>,
    /// The `aud` accepted JWTs must carry.
    pub jwt_audience: Option<String>,
    /// An OpenID Connect provider whose tokens are accepted.
    pub oidc: Option<OidcConfig>,
    /// API requests per credential per minute; 0 is unlimited.
    pub rate_limit_per_minute: u32,
    /// HTTP requests per source address per minute, before authentication; 0 is unlimited.
    pub rate_limit_per_source_per_minute: u32,
}

/// An OpenID Connect provider: its issuer, this API's audience, where the role is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The issuer URL (`iss`), under which `.well-known/openid-configuration` is found.
    pub issuer: Url,
    /// The audience tokens must name.
    pub audience: String,
    /// The claim's path, split at dots.
    pub role_claim: Vec<String>,
}

pub(super) fn auth_config(r: &Reader<'_>) -> Result<AuthConfig, ConfigError> {
    use settings::*;
    Ok(AuthConfig {
        jwt_secret: r.text(&JWT_SECRET).map(Secret::new),
        jwt_public_key_file: r.text(&JWT_PUBLIC_KEY_FILE).map(PathBuf::from),
        jwt_issuer: r.text(&JWT_ISSUER),
        jwt_audience: r.text(&JWT_AUDIENCE),
        oidc: match (r.url(&OIDC_ISSUER)?, r.text(&OIDC_AUDIENCE)) {
            (Some(issuer), Some(audience)) => Some(OidcConfig {
                issuer,
                audience,
                role_claim: r
                    .required_text(&OIDC_ROLE_CLAIM)?
                    .split('.')
                    .map(str::to_owned)
                    .collect(),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::Inconsistent(
                                "OIDC_ISSUER needs OIDC_AUDIENCE: the audience this API has at the identity provider, so that its tokens for other applications are refused".into(),
                            ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::Inconsistent(
                    "OIDC_AUDIENCE is set without OIDC_ISSUER".into(),
                ));
            }
        },
        rate_limit_per_minute: r.int(&RATE_LIMIT_PER_MINUTE, 0..=1_000_000)? as u32,
        rate_limit_per_source_per_minute: r.int(&RATE_LIMIT_PER_SOURCE_PER_MINUTE, 0..=1_000_000)?
            as u32,
    })
}
