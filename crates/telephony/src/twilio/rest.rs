//! Twilio's REST API, the part a call center's agent needs: place a call (the Calls resource), redirect a
//! live call to new TwiML (the transfer), and end it. Requests are form-encoded and authenticated with
//! HTTP basic auth (account SID and auth token); answers and errors are Twilio's JSON. The base URL is
//! configurable so the tests run against a local server that records what it was sent.

use std::time::Duration;

use serde::Deserialize;

/// Twilio's API version in every Calls path.
const API_VERSION: &str = "2010-04-01";
/// Longest wait for one request; Twilio answers in well under a second.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The status callback events asked for on a placed call.
const STATUS_EVENTS: [&str; 4] = ["initiated", "ringing", "answered", "completed"];

/// Why a request to Twilio failed.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// No answer: network, DNS, TLS, or a timeout.
    #[error("cannot reach Twilio's API at {url}: {source}")]
    Unreachable {
        /// What was requested.
        url: String,
        /// The transport's reason.
        #[source]
        source: reqwest::Error,
    },
    /// Twilio answered with an error (its own code and message when it gave them).
    #[error("Twilio refused the request ({status}{}): {message}", code.map(|c| format!(", error {c}")).unwrap_or_default())]
    Refused {
        /// HTTP status.
        status: u16,
        /// Twilio's error code (see Twilio's error dictionary).
        code: Option<u32>,
        /// Twilio's message, or the start of the body.
        message: String,
    },
    /// A success whose body is not the Call resource.
    #[error("Twilio's answer is not a Call resource: {0}")]
    BadAnswer(String),
}

/// A call as Twilio describes it (the fields the agent uses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallResource {
    /// Twilio's id of the call (`CA…`).
    pub sid: String,
    /// queued, ringing, in-progress, completed, busy, failed, no-answer or canceled.
    pub status: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
}

/// An outbound call to place.
#[derive(Debug, Clone)]
pub struct PlaceCall<'a> {
    /// Who to call (E.164).
    pub to: &'a str,
    /// The Twilio number calling (E.164).
    pub from: &'a str,
    /// Where Twilio fetches the call's TwiML once answered (our `/twilio/voice`).
    pub answer_url: &'a str,
    /// Where Twilio reports the call's progress (our `/twilio/status`).
    pub status_url: &'a str,
}

/// A client for one Twilio account.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    account_sid: String,
    auth_token: String,
}

impl Client {
    /// A client for the account `account_sid` at `base` (`https://api.twilio.com`, or a test server).
    pub fn new(base: &str, account_sid: &str, auth_token: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_owned(),
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
        }
    }

    fn calls_url(&self) -> String {
        format!(
            "{}/{API_VERSION}/Accounts/{}/Calls.json",
            self.base, self.account_sid
        )
    }

    fn call_url(&self, call_sid: &str) -> String {
        format!(
            "{}/{API_VERSION}/Accounts/{}/Calls/{call_sid}.json",
            self.base, self.account_sid
        )
    }

    /// Places an outbound call; Twilio fetches `answer_url` once it is answered.
    pub async fn place(&self, call: &PlaceCall<'_>) -> Result<CallResource, RestError> {
        let mut form = vec![
            ("To", call.to),
            ("From", call.from),
            ("Url", call.answer_url),
            ("Method", "POST"),
            ("StatusCallback", call.status_url),
            ("StatusCallbackMethod", "POST"),
        ];
        form.extend(STATUS_EVENTS.iter().map(|e| ("StatusCallbackEvent", *e)));
        self.post(self.calls_url(), &form).await
    }

    /// Replaces what a live call is doing with `twiml` (a transfer is a `<Dial>`); the Media Stream
    /// connected to us ends.
    pub async fn redirect(&self, call_sid: &str, twiml: &str) -> Result<CallResource, RestError> {
        self.post(self.call_url(call_sid), &[("Twiml", twiml)])
            .await
    }

    /// Ends a live call.
    pub async fn hang_up(&self, call_sid: &str) -> Result<CallResource, RestError> {
        self.post(self.call_url(call_sid), &[("Status", "completed")])
            .await
    }

    async fn post(&self, url: String, form: &[(&str, &str)]) -> Result<CallResource, RestError> {
        let response = self
            .http
            .post(&url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(form)
            .send()
            .await
            .map_err(|source| RestError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|source| RestError::Unreachable { url, source })?;
        if !status.is_success() {
            let error = serde_json::from_str::<ErrorBody>(&body).ok();
            return Err(RestError::Refused {
                status: status.as_u16(),
                code: error.as_ref().and_then(|e| e.code),
                message: error
                    .and_then(|e| e.message)
                    .unwrap_or_else(|| body.chars().take(200).collect()),
            });
        }
        serde_json::from_str(&body).map_err(|e| {
            RestError::BadAnswer(format!(
                "{e}: {}",
                body.chars().take(200).collect::<String>()
            ))
        })
    }
}
