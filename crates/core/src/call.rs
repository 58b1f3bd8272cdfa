//! The vocabulary of a call's record: who spoke, which way the call went.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Who said a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    /// The person on the phone.
    Caller,
    /// Switchboard's agent.
    Agent,
}

/// Which side placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallDirection {
    /// The caller dialled in.
    Inbound,
    /// Switchboard placed the call.
    Outbound,
}

/// A stored word that is not one of an enum's words: a damaged row, reported instead of panicking.
#[derive(Debug, thiserror::Error)]
#[error("'{value}' is not a valid {what}")]
pub struct UnknownWord {
    what: &'static str,
    value: String,
}

macro_rules! words {
    ($ty:ident, $what:literal, $($variant:ident = $text:literal),+) => {
        impl $ty {
            /// The word stored in the database and used in the API.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    _ => Err(UnknownWord { what: $what, value: s.chars().take(32).collect() }),
                }
            }
        }
    };
}

words!(Speaker, "speaker", Caller = "caller", Agent = "agent");
words!(
    CallDirection,
    "call direction",
    Inbound = "inbound",
    Outbound = "outbound"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_words_are_errors() {
        for s in [Speaker::Caller, Speaker::Agent] {
            assert_eq!(s.as_str().parse::<Speaker>().unwrap(), s);
        }
        assert_eq!(
            "outbound".parse::<CallDirection>().unwrap(),
            CallDirection::Outbound
        );
        assert!("robot".parse::<Speaker>().is_err());
    }
}
