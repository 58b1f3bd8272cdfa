//! Who may call the user agent: an INVITE from a trusted source (SIP_TRUSTED_SOURCES) is taken as it is;
//! from anywhere else it must answer a digest challenge (RFC 3261 §22, RFC 2617 with qop=auth; MD5 or,
//! per RFC 8760, SHA-256) with SIP_INBOUND_USERNAME and SIP_INBOUND_PASSWORD, or it is refused 403 Forbidden.
//!
//! Nonces are stateless: the time they were made and an HMAC over that time and the caller's address, so
//! a nonce is good for [`NONCE_LIFETIME`] and only from the address it was given to. Each nonce is
//! remembered once used: its request counter (`nc`) must rise, and without qop it is good for one
//! request, so a captured INVITE cannot be played again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use switchboard_core::config::Sources;

type HmacSha256 = Hmac<Sha256>;

/// How long a challenge's nonce may be answered.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// The realm our challenges name.
pub const REALM: &str = "switchboard";
/// Used nonces remembered at most; beyond this the oldest are forgotten early (they then read as used).
const USED_NONCES: usize = 10_000;

/// What becomes of an INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// From a trusted source.
    Trusted,
    /// The caller proved the inbound credentials.
    Authenticated,
    /// Ask for credentials: 401 with these `WWW-Authenticate` values.
    Challenge(Vec<String>),
    /// 403 Forbidden: an untrusted source with no way in, or wrong credentials.
    Forbidden(&'static str),
}

/// One caller's answer to a challenge: the fields of its `Authorization: Digest` header.
#[derive(Debug, Clone, Default)]
pub struct DigestAnswer {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `uri`.
    pub uri: String,
    /// `response`.
    pub response: String,
    /// `algorithm` (MD5 when absent).
    pub algorithm: String,
    /// `qop`, `cnonce` and `nc`, when the caller used qop.
    pub qop: Option<(String, String, u32)>,
}

/// The inbound rules of one user agent.
pub struct InboundPolicy {
    trusted: Sources,
    credentials: Option<(String, String)>,
    key: [u8; 32],
    /// Nonces answered, with the highest `nc` seen and when the nonce was made.
    used: Mutex<HashMap<String, (u32, u64)>>,
}

impl std::fmt::Debug for InboundPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundPolicy")
            .field("trusted", &self.trusted.to_string())
            .field("digest", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

impl InboundPolicy {
    /// Trusts `trusted`; with `credentials` (user name, password), anyone else may prove them.
    pub fn new(trusted: Sources, credentials: Option<(String, String)>) -> Self {
        let mut key = [0u8; 32];
        // getrandom fails only where the system has no entropy source. A guessable key would let a
        // stranger mint nonces (never pass without the password), so the fallback varies per process.
        if getrandom::fill(&mut key).is_err() {
            let seed = format!("{:?}{}", SystemTime::now(), std::process::id());
            key.copy_from_slice(&Sha256::digest(seed.as_bytes()));
        }
        Self {
            trusted,
            credentials,
            key,
            used: Mutex::new(HashMap::new()),
        }
    }

    /// Anyone may call: what a test or `switchboard call`'s own loopback server runs.
    pub fn open() -> Self {
        Self::new(
            Sources::parse("0.0.0.0/0,::/0").unwrap_or_else(|_| Sources::loopback()),
            None,
        )
    }

    /// The trusted sources.
    pub fn trusted(&self) -> &Sources {
        &self.trusted
    }

    /// Decides an INVITE from `peer`, carrying `answer` when it has an `Authorization` header.
    pub fn check(&self, method: &str, peer: IpAddr, answer: Option<&DigestAnswer>) -> Verdict {
        if self.trusted.contains(peer) {
            return Verdict::Trusted;
        }
        let Some((username, password)) = &self.credentials else {
            return Verdict::Forbidden("not a trusted source");
        };
        let now = unix_now();
        let Some(answer) = answer else {
            return Verdict::Challenge(self.challenges(peer, now, false));
        };
        let Some(made) = self.nonce_time(&answer.nonce, peer) else {
            // Not ours, or given to another address: a fresh challenge.
            return Verdict::Challenge(self.challenges(peer, now, false));
        };
        if now.saturating_sub(made) > NONCE_LIFETIME.as_secs() {
            return Verdict::Challenge(self.challenges(peer, now, true));
        }
        let Some(expected) = expected_response(answer, username, REALM, password, method) else {
            return Verdict::Forbidden("an algorithm we do not offer");
        };
        if answer.username != *username
            || answer.realm != REALM
            || !same(
                expected.as_bytes(),
                answer.response.to_ascii_lowercase().as_bytes(),
            )
        {
            return Verdict::Forbidden("wrong credentials");
        }
        if !self.first_use(answer, made, now) {
            return Verdict::Forbidden("a nonce used before");
        }
        Verdict::Authenticated
    }

    /// `WWW-Authenticate` values for `peer`: MD5, then SHA-256 (RFC 8760). MD5 comes first because many
    /// phones and test tools (sipp among them) read only the first challenge and know no other algorithm;
    /// a caller that takes SHA-256 is checked with it.
    fn challenges(&self, peer: IpAddr, now: u64, stale: bool) -> Vec<String> {
        let nonce = self.nonce(peer, now);
        let stale = if stale { ", stale=true" } else { "" };
        ["MD5", "SHA-256"]
            .iter()
            .map(|algorithm| {
                format!(
                    "Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm={algorithm}, qop=\"auth\"{stale}"
                )
            })
            .collect()
    }

    fn mac(&self, peer: IpAddr, made: u64) -> Vec<u8> {
        // The key is 32 bytes: HMAC takes a key of any length.
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable_key());
        mac.update(&made.to_be_bytes());
        mac.update(peer.to_string().as_bytes());
        mac.finalize().into_bytes()[..16].to_vec()
    }

    fn nonce(&self, peer: IpAddr, made: u64) -> String {
        format!("{made:016x}{}", hex(&self.mac(peer, made)))
    }

    /// When a nonce we made for `peer` was made; `None` for anything else.
    fn nonce_time(&self, nonce: &str, peer: IpAddr) -> Option<u64> {
        if nonce.len() != 48 || !nonce.is_ascii() {
            return None;
        }
        let made = u64::from_str_radix(&nonce[..16], 16).ok()?;
        same(
            hex(&self.mac(peer, made)).as_bytes(),
            &nonce.as_bytes()[16..],
        )
        .then_some(made)
    }

    /// Records the use of the answer's nonce; false when it (or its `nc`) was used before.
    fn first_use(&self, answer: &DigestAnswer, made: u64, now: u64) -> bool {
        let nc = answer.qop.as_ref().map_or(0, |(_, _, nc)| *nc);
        let Ok(mut used) = self.used.lock() else {
            return false;
        };
        used.retain(|_, (_, at)| now.saturating_sub(*at) <= NONCE_LIFETIME.as_secs());
        if used.len() >= USED_NONCES
            && let Some(oldest) = used
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
        {
            used.remove(&oldest);
        }
        match used.get_mut(&answer.nonce) {
            Some(_) if answer.qop.is_none() => false,
            Some((last, _)) if nc <= *last => false,
            Some((last, _)) => {
                *last = nc;
                true
            }
            None => {
                used.insert(answer.nonce.clone(), (nc, made));
                true
            }
        }
    }
}

#[cold]
fn unreachable_key() -> HmacSha256 {
    // new_from_slice fails only for MACs with a fixed key length; HMAC has none.
    #[allow(clippy::expect_used)]
    <HmacSha256 as Mac>::new_from_slice(b"switchboard").expect("HMAC takes any key length")
}

/// The response a caller who knows the password sends, in lower-case hex; `None` for an algorithm other
/// than MD5 or SHA-256.
fn expected_response(
    answer: &DigestAnswer,
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
) -> Option<String> {
    let hash: fn(&str) -> String = match answer.algorithm.to_ascii_uppercase().as_str() {
        "" | "MD5" => |text| format!("{:x}", md5::compute(text.as_bytes())),
        "SHA-256" => |text| hex(&Sha256::digest(text.as_bytes())),
        _ => return None,
    };
    let ha1 = hash(&format!("{username}:{realm}:{password}"));
    let ha2 = hash(&format!("{method}:{}", answer.uri));
    Some(match &answer.qop {
        Some((qop, cnonce, nc)) => hash(&format!(
            "{ha1}:{}:{nc:08x}:{cnonce}:{qop}:{ha2}",
            answer.nonce
        )),
        None => hash(&format!("{ha1}:{}:{ha2}", answer.nonce)),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn policy(credentials: bool) -> InboundPolicy {
        InboundPolicy::new(
            Sources::parse("10.0.0.0/8").unwrap(),
            credentials.then(|| ("caller".to_owned(), "s3cret".to_owned())),
        )
    }

    /// What a caller's phone sends for a challenge's nonce.
    fn answer_for(nonce: &str, password: &str, algorithm: &str, nc: u32) -> DigestAnswer {
        let mut answer = DigestAnswer {
            username: "caller".into(),
            realm: REALM.into(),
            nonce: nonce.into(),
            uri: "sip:agent@192.0.2.1:5060".into(),
            algorithm: algorithm.into(),
            qop: Some(("auth".into(), "0a4f113b".into(), nc)),
            ..DigestAnswer::default()
        };
        answer.response = expected_response(&answer, "caller", REALM, password, "INVITE").unwrap();
        answer
    }

    fn nonce_of(verdict: &Verdict) -> String {
        let Verdict::Challenge(values) = verdict else {
            panic!("a challenge: {verdict:?}");
        };
        let value = &values[0];
        let start = value.find("nonce=\"").unwrap() + 7;
        value[start..start + 48].to_owned()
    }

    #[test]
    fn a_trusted_source_is_let_in_and_a_stranger_without_credentials_to_prove_is_forbidden() {
        let policy = policy(false);
        assert_eq!(
            policy.check("INVITE", peer("10.1.2.3"), None),
            Verdict::Trusted
        );
        assert!(matches!(
            policy.check("INVITE", peer("203.0.113.9"), None),
            Verdict::Forbidden(_)
        ));
    }

    #[test]
    fn a_stranger_who_knows_the_password_gets_in_once_per_counter_and_a_wrong_one_is_forbidden() {
        let policy = policy(true);
        let stranger = peer("203.0.113.9");
        let challenge = policy.check("INVITE", stranger, None);
        let nonce = nonce_of(&challenge);
        let Verdict::Challenge(values) = &challenge else {
            unreachable!()
        };
        assert!(values[0].contains("algorithm=MD5") && values[1].contains("algorithm=SHA-256"));
        for algorithm in ["MD5", "SHA-256"] {
            let good = answer_for(&nonce, "s3cret", algorithm, 1);
            let fresh = InboundPolicy {
                key: policy.key,
                ..policy_like(&policy)
            };
            assert_eq!(
                fresh.check("INVITE", stranger, Some(&good)),
                Verdict::Authenticated,
                "{algorithm}"
            );
            // The same answer again is a replay.
            assert!(matches!(
                fresh.check("INVITE", stranger, Some(&good)),
                Verdict::Forbidden(_)
            ));
            // The next counter on the same nonce is a new request.
            let next = answer_for(&nonce, "s3cret", algorithm, 2);
            assert_eq!(
                fresh.check("INVITE", stranger, Some(&next)),
                Verdict::Authenticated
            );
        }
        let wrong = answer_for(&nonce, "guess", "MD5", 1);
        assert_eq!(
            policy.check("INVITE", stranger, Some(&wrong)),
            Verdict::Forbidden("wrong credentials")
        );
        // The nonce was given to another address: a new challenge, not a way in.
        let good = answer_for(&nonce, "s3cret", "MD5", 1);
        assert!(matches!(
            policy.check("INVITE", peer("198.51.100.1"), Some(&good)),
            Verdict::Challenge(_)
        ));
    }

    /// A policy with the same rules and key as `other` and no nonce used yet.
    fn policy_like(other: &InboundPolicy) -> InboundPolicy {
        InboundPolicy {
            trusted: other.trusted.clone(),
            credentials: other.credentials.clone(),
            key: other.key,
            used: Mutex::new(HashMap::new()),
        }
    }

    #[test]
    fn an_old_nonce_is_challenged_again_as_stale_and_a_forged_one_afresh() {
        let policy = policy(true);
        let stranger = peer("203.0.113.9");
        let old = unix_now() - NONCE_LIFETIME.as_secs() - 5;
        let stale_nonce = policy.nonce(stranger, old);
        let answer = answer_for(&stale_nonce, "s3cret", "MD5", 1);
        let Verdict::Challenge(values) = policy.check("INVITE", stranger, Some(&answer)) else {
            panic!("challenged again");
        };
        assert!(values[0].contains("stale=true"), "{values:?}");
        let forged = format!("{:016x}{}", unix_now(), "0".repeat(32));
        let answer = answer_for(&forged, "s3cret", "MD5", 1);
        let Verdict::Challenge(values) = policy.check("INVITE", stranger, Some(&answer)) else {
            panic!("challenged");
        };
        assert!(!values[0].contains("stale"));
    }

    #[test]
    fn responses_match_the_rfc_2617_example() {
        // RFC 2617 §3.5: Mufasa, "Circle Of Life", qop=auth.
        let answer = DigestAnswer {
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            uri: "/dir/index.html".into(),
            algorithm: "MD5".into(),
            qop: Some(("auth".into(), "0a4f113b".into(), 1)),
            ..DigestAnswer::default()
        };
        let realm = "testrealm@host.com";
        assert_eq!(
            expected_response(&answer, "Mufasa", realm, "Circle Of Life", "GET").as_deref(),
            Some("6629fae49393a05397450978507c4ef1")
        );
        let mut other = answer.clone();
        other.algorithm = "SHA-512-256".into();
        assert_eq!(expected_response(&other, "Mufasa", realm, "x", "GET"), None);
    }
}
