//! `X-Twilio-Signature`: how a webhook proves it comes from Twilio.
//!
//! Twilio signs the full URL it requested (scheme, host, path and query string, exactly as configured)
//! followed by every POST parameter, sorted by name, each written as name then value with nothing between,
//! with HMAC-SHA1 keyed by the account's auth token, and sends the base64 of the digest. A request whose
//! header does not match was not sent by Twilio (or was changed on the way) and is refused.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The header Twilio puts the signature in.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

type HmacSha1 = Hmac<Sha1>;

/// The signed string's MAC, before base64.
fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // By name, then by value for a name given more than once (as Twilio's own libraries do).
    sorted.sort();
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = <HmacSha1 as Mac>::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// The signature Twilio sends for a request to `url` with these POST parameters.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    BASE64.encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// Whether `header` is Twilio's signature of this request. Compared in constant time; a header that is
/// not base64 is simply not a match.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], header: &str) -> bool {
    let Ok(claimed) = BASE64.decode(header.trim()) else {
        return false;
    };
    mac(auth_token, url, params).verify_slice(&claimed).is_ok()
}

/// Domain separation: a stream token can never be mistaken for a webhook signature.
const STREAM_TOKEN_CONTEXT: &str = "switchboard media stream\n";

/// The token our TwiML gives a Media Stream for `call_id`. Twilio sends it back in the stream's `start`
/// parameters; only whoever read our signed-for answer knows it, so a socket that cannot show it is not
/// the stream Twilio opened for that call.
pub fn stream_token(auth_token: &str, call_id: &str) -> String {
    sign(
        auth_token,
        STREAM_TOKEN_CONTEXT,
        &[(call_id.to_owned(), String::new())],
    )
}

/// Whether `token` is [`stream_token`] for `call_id`, in constant time.
pub fn verify_stream_token(auth_token: &str, call_id: &str, token: &str) -> bool {
    verify(
        auth_token,
        STREAM_TOKEN_CONTEXT,
        &[(call_id.to_owned(), String::new())],
        token,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The example of Twilio's signature-validation snippets (TwilioDevEd/api-snippets,
    /// `security/signature_validation`); Python's `hmac` gives the same digest.
    fn published_example() -> (&'static str, &'static str, Vec<(String, String)>) {
        (
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            params(&[
                ("CallSid", "CA1234567890ABCDE"),
                ("Caller", "+14158675309"),
                ("Digits", "1234"),
                ("From", "+14158675309"),
                ("To", "+18005551212"),
            ]),
        )
    }

    #[test]
    fn twilios_published_example_verifies() {
        let (token, url, params) = published_example();
        assert_eq!(sign(token, url, &params), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(verify(token, url, &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn the_order_of_the_parameters_does_not_matter() {
        let (token, url, mut params) = published_example();
        params.reverse();
        assert!(verify(token, url, &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let (token, url, params) = published_example();
        let good = sign(token, url, &params);
        assert!(!verify("54321", url, &params, &good), "another token");
        assert!(!verify(
            token,
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params,
            &good
        ));
        let mut changed = params.clone();
        changed[2].1 = "1235".into();
        assert!(!verify(token, url, &changed, &good), "a changed parameter");
        let mut added = params.clone();
        added.push(("Extra".into(), String::new()));
        assert!(!verify(token, url, &added, &good), "an added parameter");
        assert!(!verify(token, url, &params, ""), "no signature");
        assert!(!verify(token, url, &params, "not base64 at all!"));
        assert!(
            !verify(token, url, &params, &good[..good.len() - 4]),
            "cut short"
        );
    }

    #[test]
    fn a_stream_token_belongs_to_one_call_and_one_account() {
        let token = stream_token("secret", "0193-a");
        assert!(verify_stream_token("secret", "0193-a", &token));
        assert!(!verify_stream_token("secret", "0193-b", &token));
        assert!(!verify_stream_token("other", "0193-a", &token));
        assert!(!verify_stream_token("secret", "0193-a", ""));
    }
}
