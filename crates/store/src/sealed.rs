//! Callers' data encrypted at rest (`DATA_KEY_FILE`): the claim and the call's context with AES-256-GCM
//! under a random nonce, the caller's and callee's numbers under a nonce derived from the number (so the
//! same number always seals to the same text and `?number=` still finds its calls, at the cost of showing
//! which rows share a number). Each sealed value names the key that sealed it, so keys can be rotated: the
//! key file's first key seals, every key in it opens. Each value is bound to its column (and, where it has
//! one, its call), so a sealed claim copied onto another call does not open.
//!
//! A sealed value reads `sb1:<key id>:<base64 of nonce, ciphertext and tag>`; a value without that prefix
//! (written before a key was configured) is read as it is.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

pub(crate) const PREFIX: &str = "sb1:";

/// Why data keys could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataKeyError {
    /// The key file could not be read.
    #[error("cannot read DATA_KEY_FILE {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the key file is not `<id> <base64 of 32 bytes>`.
    #[error(
        "DATA_KEY_FILE line {line}: expected `<key id> <base64 of 32 random bytes>` (make one with `switchboard keys data-key`)"
    )]
    Malformed {
        /// 1-based line number.
        line: usize,
    },
    /// Two keys share an id.
    #[error("DATA_KEY_FILE names key {id:?} twice")]
    Duplicate {
        /// The id.
        id: String,
    },
    /// The file holds no key.
    #[error("DATA_KEY_FILE holds no key")]
    Empty,
    /// A sealed value names a key the file does not hold, or does not open.
    #[error("a stored value cannot be opened: {0}")]
    Open(String),
    /// The system's random source failed.
    #[error("no randomness for a nonce")]
    Random,
}

struct Key {
    id: String,
    aead: LessSafeKey,
    nonces: hmac::Key,
}

/// The keys callers' data is sealed with: the first seals, all open.
pub struct DataKeys {
    keys: Vec<Key>,
    random: SystemRandom,
}

impl fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeys")
            .field("ids", &self.keys.iter().map(|k| &k.id).collect::<Vec<_>>())
            .finish()
    }
}

/// A new key line for a key file: `<id> <base64 of 32 random bytes>`.
pub fn new_key_line(id: &str) -> Result<String, DataKeyError> {
    let mut secret = [0u8; 32];
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| DataKeyError::Random)?;
    Ok(format!("{id} {}", B64.encode(secret)))
}

impl DataKeys {
    /// Reads a key file: one key a line, `<id> <base64 of 32 bytes>`, the current key first; `#` starts a
    /// comment.
    pub fn load(path: &Path) -> Result<Self, DataKeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| DataKeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Reads the keys of a key file's text.
    pub fn parse(text: &str) -> Result<Self, DataKeyError> {
        let mut keys: Vec<Key> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let malformed = || DataKeyError::Malformed { line: n + 1 };
            let (id, secret) = line.split_once(char::is_whitespace).ok_or_else(malformed)?;
            let secret = B64
                .decode(secret.trim().trim_end_matches('='))
                .map_err(|_| malformed())?;
            let valid_id = !id.is_empty()
                && id.len() <= 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if secret.len() != 32 || !valid_id {
                return Err(malformed());
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(DataKeyError::Duplicate { id: id.to_owned() });
            }
            let aead = UnboundKey::new(&AES_256_GCM, &secret).map_err(|_| malformed())?;
            // The nonces of fixed sealing come from a key of their own, derived from the same secret.
            let nonce_key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &secret), b"sb1 nonces");
            keys.push(Key {
                id: id.to_owned(),
                aead: LessSafeKey::new(aead),
                nonces: hmac::Key::new(hmac::HMAC_SHA256, nonce_key.as_ref()),
            });
        }
        if keys.is_empty() {
            return Err(DataKeyError::Empty);
        }
        Ok(Self {
            keys,
            random: SystemRandom::new(),
        })
    }

    /// The id of the key that seals.
    pub fn current(&self) -> &str {
        &self.keys[0].id
    }

    /// The nonce, then `data` sealed under `key` with it and its tag.
    fn seal_raw(key: &Key, nonce: [u8; NONCE_LEN], data: &[u8], bound_to: &str) -> Vec<u8> {
        let mut sealed = data.to_vec();
        // Sealing in place cannot fail for values this small (GCM's limit is 64 GB).
        let _ = key.aead.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(bound_to.as_bytes()),
            &mut sealed,
        );
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    fn seal_with(key: &Key, nonce: [u8; NONCE_LEN], plain: &str, bound_to: &str) -> String {
        let raw = Self::seal_raw(key, nonce, plain.as_bytes(), bound_to);
        format!("{PREFIX}{}:{}", key.id, B64.encode(raw))
    }

    /// `plain` sealed under the current key with a random nonce, bound to `bound_to` (a column and a row).
    pub fn seal(&self, plain: &str, bound_to: &str) -> Result<String, DataKeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| DataKeyError::Random)?;
        Ok(Self::seal_with(&self.keys[0], nonce, plain, bound_to))
    }

    fn fixed_nonce(key: &Key, plain: &str, bound_to: &str) -> [u8; NONCE_LEN] {
        let tag = hmac::sign(&key.nonces, format!("{bound_to}\0{plain}").as_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&tag.as_ref()[..NONCE_LEN]);
        nonce
    }

    /// `plain` sealed under the current key with a nonce derived from it: equal values seal equally, so a
    /// sealed column can still be searched for a value.
    pub fn seal_fixed(&self, plain: &str, bound_to: &str) -> String {
        let key = &self.keys[0];
        Self::seal_with(
            key,
            Self::fixed_nonce(key, plain, bound_to),
            plain,
            bound_to,
        )
    }

    /// How `plain` may be stored, under each key (and as written before encryption): what a search for it
    /// must match.
    pub fn fixed_forms(&self, plain: &str, bound_to: &str) -> Vec<String> {
        std::iter::once(plain.to_owned())
            .chain(self.keys.iter().map(|key| {
                Self::seal_with(
                    key,
                    Self::fixed_nonce(key, plain, bound_to),
                    plain,
                    bound_to,
                )
            }))
            .collect()
    }

    /// `data` sealed under the current key with a random nonce, bound to `bound_to`: `sb1:<id>:` then the
    /// nonce, the ciphertext and the tag, as bytes.
    pub fn seal_bytes(&self, data: &[u8], bound_to: &str) -> Result<Vec<u8>, DataKeyError> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| DataKeyError::Random)?;
        let mut out = format!("{PREFIX}{}:", key.id).into_bytes();
        out.extend(Self::seal_raw(key, nonce, data, bound_to));
        Ok(out)
    }

    /// The bytes [`DataKeys::seal_bytes`] sealed.
    pub fn open_bytes(&self, stored: &[u8], bound_to: &str) -> Result<Vec<u8>, DataKeyError> {
        let rest = stored
            .strip_prefix(PREFIX.as_bytes())
            .ok_or_else(|| DataKeyError::Open("not sealed".into()))?;
        let colon = rest
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| DataKeyError::Open("no key id".into()))?;
        let id = String::from_utf8_lossy(&rest[..colon]).into_owned();
        self.open_body(&id, &rest[colon + 1..], bound_to)
    }

    /// Opens the nonce, ciphertext and tag `body` sealed with key `id`.
    fn open_body(&self, id: &str, body: &[u8], bound_to: &str) -> Result<Vec<u8>, DataKeyError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| DataKeyError::Open(format!("key {id:?} is not in DATA_KEY_FILE")))?;
        if body.len() < NONCE_LEN {
            return Err(DataKeyError::Open("too short".into()));
        }
        let (nonce, sealed) = body.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| DataKeyError::Open("bad nonce".into()))?;
        let mut data = sealed.to_vec();
        let plain = key
            .aead
            .open_in_place(nonce, Aad::from(bound_to.as_bytes()), &mut data)
            .map_err(|_| {
                DataKeyError::Open(format!(
                    "key {id:?} does not open it (tampered, or moved from another row)"
                ))
            })?;
        Ok(plain.to_vec())
    }

    /// The plain text of a stored value (returned as it is when it was never sealed).
    pub fn open(&self, stored: &str, bound_to: &str) -> Result<String, DataKeyError> {
        open_with(Some(self), stored, bound_to)
    }
}

/// What sealed values are bound to: a column, and the call for the values of one call.
pub(crate) const NUMBER: &str = "calls.number";

pub(crate) fn context_of(call: &str) -> String {
    format!("calls.context:{call}")
}

pub(crate) fn claim_of(call: &str) -> String {
    format!("call_summaries.claim:{call}")
}

impl crate::Database {
    /// A caller's or callee's number as stored: sealed with a fixed nonce when keys are configured.
    pub(crate) fn seal_number(&self, number: Option<&str>) -> Option<String> {
        number.map(|n| match &self.keys {
            Some(keys) => keys.seal_fixed(n, NUMBER),
            None => n.to_owned(),
        })
    }

    /// Every stored form a search for `number` must match.
    pub(crate) fn number_forms(&self, number: &str) -> Vec<String> {
        match &self.keys {
            Some(keys) => keys.fixed_forms(number, NUMBER),
            None => vec![number.to_owned()],
        }
    }

    /// A value as stored: sealed (random nonce, bound to `bound_to`) when keys are configured.
    pub(crate) fn seal_value(
        &self,
        plain: &str,
        bound_to: &str,
    ) -> Result<String, crate::StoreError> {
        match &self.keys {
            Some(keys) => keys
                .seal(plain, bound_to)
                .map_err(|e| crate::calls::corrupt("sealed value", e)),
            None => Ok(plain.to_owned()),
        }
    }

    /// The plain text of a stored value.
    pub(crate) fn open_value(
        &self,
        what: &'static str,
        stored: &str,
        bound_to: &str,
    ) -> Result<String, crate::StoreError> {
        open_with(self.keys.as_deref(), stored, bound_to)
            .map_err(|e| crate::calls::corrupt(what, e))
    }
}

/// The plain text of `stored`: opened with `keys` when sealed; an unsealed value as it is.
pub(crate) fn open_with(
    keys: Option<&DataKeys>,
    stored: &str,
    bound_to: &str,
) -> Result<String, DataKeyError> {
    let Some(rest) = stored.strip_prefix(PREFIX) else {
        return Ok(stored.to_owned());
    };
    let (id, body) = rest
        .split_once(':')
        .ok_or_else(|| DataKeyError::Open("no key id".into()))?;
    let Some(keys) = keys else {
        return Err(DataKeyError::Open(format!(
            "it was sealed with key {id:?} and DATA_KEY_FILE is not set"
        )));
    };
    let raw = B64
        .decode(body)
        .map_err(|_| DataKeyError::Open("not base64".into()))?;
    let plain = keys.open_body(id, &raw, bound_to)?;
    String::from_utf8(plain).map_err(|_| DataKeyError::Open("not text".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(lines: &[&str]) -> DataKeys {
        DataKeys::parse(&lines.join("\n")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_binding() {
        let line = new_key_line("k1").unwrap_or_default();
        let one = keys(&[&line]);
        let sealed = one.seal("+14155550100", "claim:call-1").unwrap_or_default();
        assert!(sealed.starts_with("sb1:k1:"), "{sealed}");
        assert!(!sealed.contains("4155550100"));
        assert_eq!(
            one.open(&sealed, "claim:call-1").ok().as_deref(),
            Some("+14155550100")
        );
        assert!(
            one.open(&sealed, "claim:call-2").is_err(),
            "moved to another row"
        );
        let mut tampered = sealed.clone();
        tampered.replace_range(10..11, if &sealed[10..11] == "A" { "B" } else { "A" });
        assert!(one.open(&tampered, "claim:call-1").is_err());
        // Random nonces: the same value seals differently each time.
        assert_ne!(
            one.seal("x", "b").unwrap_or_default(),
            one.seal("x", "b").unwrap_or_default()
        );
        // Unsealed (older) values read as they are; sealed ones need the file.
        assert_eq!(one.open("plain", "b").ok().as_deref(), Some("plain"));
        assert!(open_with(None, &sealed, "claim:call-1").is_err());
    }

    #[test]
    fn sealed_bytes_open_only_where_they_were_sealed() {
        let one = keys(&[&new_key_line("k1").unwrap_or_default()]);
        let audio: Vec<u8> = (0..=255u8).cycle().take(4_000).collect();
        let sealed = one.seal_bytes(&audio, "recording:c:1").unwrap_or_default();
        assert!(sealed.starts_with(b"sb1:k1:"));
        assert!(
            !sealed.windows(64).any(|w| w == &audio[..64]),
            "no plain run survives"
        );
        assert_eq!(one.open_bytes(&sealed, "recording:c:1").ok(), Some(audio));
        assert!(
            one.open_bytes(&sealed, "recording:c:2").is_err(),
            "another chunk's place"
        );
        assert!(one.open_bytes(b"RIFF....", "recording:c:1").is_err());
    }

    #[test]
    fn rotation_seals_with_the_first_key_and_opens_with_any() {
        let old_line = new_key_line("2025").unwrap_or_default();
        let new_line = new_key_line("2026").unwrap_or_default();
        let before = keys(&[&old_line]);
        let sealed_before = before.seal_fixed("+14155550100", "calls.number");
        let after = keys(&["# rotated on 2026-01-01", &new_line, &old_line]);
        assert_eq!(after.current(), "2026");
        assert_eq!(
            after.open(&sealed_before, "calls.number").ok().as_deref(),
            Some("+14155550100")
        );
        let sealed_after = after.seal_fixed("+14155550100", "calls.number");
        assert!(sealed_after.starts_with("sb1:2026:"));
        assert_eq!(
            sealed_after,
            after.seal_fixed("+14155550100", "calls.number"),
            "fixed"
        );
        let forms = after.fixed_forms("+14155550100", "calls.number");
        assert!(forms.contains(&sealed_before) && forms.contains(&sealed_after));
        assert!(forms.contains(&"+14155550100".to_owned()));
    }

    #[test]
    fn a_bad_key_file_is_refused_with_its_line() {
        for (text, expected) in [
            ("", "no key"),
            ("k1 c2hvcnQ", "line 1"),
            ("# only a comment\nk1", "line 2"),
            (
                "bad/id AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "line 1",
            ),
        ] {
            let err = DataKeys::parse(text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let line = new_key_line("same").unwrap_or_default();
        let err = DataKeys::parse(&format!("{line}\n{line}"))
            .err()
            .map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("twice"));
    }
}
