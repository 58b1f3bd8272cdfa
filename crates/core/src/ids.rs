//! Newtype identifiers, so a call id can never be passed where another id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Identifies one call for its whole life: API, transcript rows, logs and metrics all carry it.
///
/// UUIDv7, so ids sort by creation time in the database and in listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(Uuid);

impl CallId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The underlying UUID, for storage layers that bind it natively.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for CallId {
    /// A call named by someone else (Asterisk's AudioSocket UUID); any UUID version is kept as given.
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl Default for CallId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A call id that failed to parse; the API turns it into a 400/404 instead of a panic.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a call id (expected a UUID)")]
pub struct InvalidCallId(String);

impl FromStr for CallId {
    type Err = InvalidCallId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| InvalidCallId(s.chars().take(64).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_round_trip_through_text() {
        let id = CallId::new();
        assert_eq!(id.to_string().parse::<CallId>().unwrap(), id);
    }

    #[test]
    fn call_ids_sort_by_creation() {
        let a = CallId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = CallId::new();
        assert!(a < b);
    }

    #[test]
    fn garbage_is_rejected_with_a_bounded_message() {
        let long = "x".repeat(10_000);
        let err = long.parse::<CallId>().unwrap_err().to_string();
        assert!(err.len() < 120, "{err}");
    }
}
