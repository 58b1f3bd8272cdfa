//! Typed reading of resolved settings: each accessor checks a value against what its setting allows, and
//! every failure names the setting, the value (redacted for a secret) and where it came from.

use std::net::IpAddr;
use std::ops::RangeInclusive;

use url::Url;

use super::settings::{self, Setting};
use super::{ConfigError, ResolvedSettings, Source, Sources, choice};
use crate::secret::REDACTED;

/// Typed access to resolved settings; every failure names the setting.
pub(super) struct Reader<'a> {
    pub(super) resolved: &'a ResolvedSettings,
}

impl Reader<'_> {
    pub(super) fn invalid(&self, s: &'static Setting) -> ConfigError {
        let (value, source) = match self.resolved.get(s) {
            Some(v) if s.secret => (REDACTED.to_owned(), v.source.clone()),
            Some(v) => (v.text.clone(), v.source.clone()),
            None => (String::new(), Source::Default),
        };
        ConfigError::Invalid {
            env: s.env,
            key: s.key,
            value,
            origin: source,
            allowed: s.allowed,
        }
    }

    pub(super) fn text(&self, s: &Setting) -> Option<String> {
        self.resolved.get(s).map(|v| v.text.clone())
    }

    pub(super) fn required_text(&self, s: &'static Setting) -> Result<String, ConfigError> {
        self.text(s).ok_or_else(|| self.invalid(s))
    }

    pub(super) fn checked(
        &self,
        s: &'static Setting,
        ok: fn(&str) -> bool,
    ) -> Result<Option<String>, ConfigError> {
        match self.text(s) {
            Some(v) if ok(&v) => Ok(Some(v)),
            Some(_) => Err(self.invalid(s)),
            None => Ok(None),
        }
    }

    pub(super) fn int_opt(
        &self,
        s: &'static Setting,
        range: RangeInclusive<i64>,
    ) -> Result<Option<i64>, ConfigError> {
        match self.text(s) {
            None => Ok(None),
            Some(_) => self.int(s, range).map(Some),
        }
    }

    pub(super) fn int(
        &self,
        s: &'static Setting,
        range: RangeInclusive<i64>,
    ) -> Result<i64, ConfigError> {
        let text = self.required_text(s)?;
        match text.parse::<i64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(self.invalid(s)),
        }
    }

    /// KEYPAD_HANDOVER_KEY: a digit, or `off`.
    pub(super) fn handover_key(&self) -> Result<Option<char>, ConfigError> {
        let text = self.required_text(&settings::KEYPAD_HANDOVER_KEY)?;
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(key), None) if key.is_ascii_digit() => Ok(Some(key)),
            _ if text.eq_ignore_ascii_case("off") => Ok(None),
            _ => Err(self.invalid(&settings::KEYPAD_HANDOVER_KEY)),
        }
    }

    pub(super) fn bool(&self, s: &'static Setting) -> Result<bool, ConfigError> {
        match self.required_text(s)?.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(self.invalid(s)),
        }
    }

    pub(super) fn choice<T: choice::Choice>(&self, s: &'static Setting) -> Result<T, ConfigError> {
        let text = self.required_text(s)?;
        T::parse(&text.to_ascii_lowercase()).ok_or_else(|| self.invalid(s))
    }

    pub(super) fn url(&self, s: &'static Setting) -> Result<Option<Url>, ConfigError> {
        match self.text(s) {
            None => Ok(None),
            Some(text) => match Url::parse(&text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
                    Ok(Some(url))
                }
                _ => Err(self.invalid(s)),
            },
        }
    }

    pub(super) fn required_url(&self, s: &'static Setting) -> Result<Url, ConfigError> {
        self.url(s)?.ok_or_else(|| self.invalid(s))
    }

    pub(super) fn host_opt(&self, s: &'static Setting) -> Result<Option<String>, ConfigError> {
        match self.text(s) {
            None => Ok(None),
            Some(h) if is_host(&h) => Ok(Some(h)),
            Some(_) => Err(self.invalid(s)),
        }
    }

    pub(super) fn host(&self, s: &'static Setting) -> Result<String, ConfigError> {
        self.host_opt(s)?.ok_or_else(|| self.invalid(s))
    }

    /// A list of trusted addresses and networks; `None` when unset (the edge's own default applies).
    pub(super) fn sources(&self, s: &'static Setting) -> Result<Option<Sources>, ConfigError> {
        match self.text(s) {
            None => Ok(None),
            Some(text) => Sources::parse(&text).map(Some).map_err(|_| self.invalid(s)),
        }
    }
}

pub(super) fn is_host(h: &str) -> bool {
    h.parse::<IpAddr>().is_ok()
        || (!h.is_empty()
            && h.len() <= 253
            && h.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
            }))
}
