//! Asterisk ARI, the part the agent needs: place a call into our Stasis application, give a channel in it
//! an external media channel speaking AudioSocket to us, bridge the two, redirect a caller elsewhere (the
//! transfer), hang up; and the events of the application's WebSocket that drive it (`StasisStart`,
//! `StasisEnd`). Requests carry their parameters in the query string and basic auth, as ARI documents.

use std::time::Duration;

use serde::Deserialize;

/// Longest wait for one request; Asterisk answers locally.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an ARI request failed.
#[derive(Debug, thiserror::Error)]
pub enum AriError {
    /// No answer from Asterisk.
    #[error("cannot reach Asterisk's ARI at {url}: {source}")]
    Unreachable {
        /// What was requested.
        url: String,
        /// The transport's reason.
        #[source]
        source: reqwest::Error,
    },
    /// Asterisk answered with an error.
    #[error("ARI refused {what} ({status}): {message}")]
    Refused {
        /// The request.
        what: &'static str,
        /// HTTP status.
        status: u16,
        /// ARI's `message`, or the start of the body.
        message: String,
    },
    /// An event or answer that is not what ARI documents.
    #[error("unexpected ARI JSON: {0}")]
    BadJson(String),
}

/// A channel as ARI describes it (the fields the agent uses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Channel {
    /// Its unique id.
    pub id: String,
    /// Its name (`PJSIP/trunk-00000001`).
    #[serde(default)]
    pub name: String,
    /// Its state (`Up`, `Ring`, ...).
    #[serde(default)]
    pub state: String,
    /// Who is calling.
    #[serde(default)]
    pub caller: CallerId,
}

/// A channel's caller id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CallerId {
    /// The number, as Asterisk has it.
    #[serde(default)]
    pub number: String,
    /// The name.
    #[serde(default)]
    pub name: String,
}

/// An event of the Stasis application's WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A channel entered the application (an inbound call sent by `Stasis()`, an answered originate, or
    /// one of our external media channels), with the application arguments.
    StasisStart {
        /// The channel.
        channel: Channel,
        /// `Stasis(app,arg1,...)` arguments, or the originate's `appArgs`.
        args: Vec<String>,
    },
    /// A channel left the application (hung up, or redirected away).
    StasisEnd {
        /// The channel.
        channel: Channel,
    },
    /// Any other event, by type; nothing the agent acts on.
    Other(String),
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    channel: Option<Channel>,
    #[serde(default)]
    args: Vec<String>,
}

/// Reads one event of the application's WebSocket.
pub fn decode_event(text: &str) -> Result<Event, AriError> {
    let raw: RawEvent = serde_json::from_str(text).map_err(|e| {
        AriError::BadJson(format!(
            "{e}: {}",
            text.chars().take(120).collect::<String>()
        ))
    })?;
    let RawEvent {
        kind,
        channel: channel_of,
        args,
    } = raw;
    let channel = |channel: Option<Channel>| {
        channel.ok_or_else(|| AriError::BadJson(format!("{kind} without a channel")))
    };
    match kind.as_str() {
        "StasisStart" => Ok(Event::StasisStart {
            channel: channel(channel_of)?,
            args,
        }),
        "StasisEnd" => Ok(Event::StasisEnd {
            channel: channel(channel_of)?,
        }),
        _ => Ok(Event::Other(kind.clone())),
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
}

/// A client for one Asterisk's ARI.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

impl Client {
    /// A client for the ARI of the Asterisk HTTP server at `url` (`http://asterisk:8088`).
    pub fn new(url: &str, user: &str, password: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap_or_default(),
            base: format!("{}/ari", url.trim_end_matches('/')),
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    /// The application's event WebSocket (`ws(s)://…/ari/events?app=…`), authenticated with `api_key`.
    pub fn events_url(&self, app: &str) -> String {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("app", app)
            .append_pair("api_key", &format!("{}:{}", self.user, self.password))
            .finish();
        format!("{}/events?{query}", self.base.replacen("http", "ws", 1))
    }

    /// Dials `endpoint`; once answered the channel (id `channel_id`) enters `app` with `app_args`.
    pub async fn originate(
        &self,
        endpoint: &str,
        app: &str,
        app_args: &str,
        channel_id: &str,
        caller_id: Option<&str>,
    ) -> Result<Channel, AriError> {
        let mut query = vec![
            ("endpoint", endpoint),
            ("app", app),
            ("appArgs", app_args),
            ("channelId", channel_id),
        ];
        if let Some(caller_id) = caller_id {
            query.push(("callerId", caller_id));
        }
        self.send(reqwest::Method::POST, "/channels", &query, "originate")
            .await
    }

    /// A channel `channel_id` whose audio goes to `external_host` over AudioSocket (TCP, 8 kHz signed
    /// linear), named by the UUID `uuid` there; it enters `app` too.
    pub async fn external_media(
        &self,
        app: &str,
        channel_id: &str,
        external_host: &str,
        uuid: &str,
    ) -> Result<Channel, AriError> {
        let query = [
            ("app", app),
            ("channelId", channel_id),
            ("external_host", external_host),
            ("encapsulation", "audiosocket"),
            ("transport", "tcp"),
            ("format", "slin"),
            ("data", uuid),
        ];
        self.send(
            reqwest::Method::POST,
            "/channels/externalMedia",
            &query,
            "externalMedia",
        )
        .await
    }

    /// A mixing bridge `bridge_id` holding `channels`.
    pub async fn bridge(&self, bridge_id: &str, channels: &[&str]) -> Result<(), AriError> {
        self.send_empty(
            reqwest::Method::POST,
            "/bridges",
            &[("type", "mixing"), ("bridgeId", bridge_id)],
            "create bridge",
        )
        .await?;
        let channels = channels.join(",");
        self.send_empty(
            reqwest::Method::POST,
            &format!("/bridges/{bridge_id}/addChannel"),
            &[("channel", channels.as_str())],
            "addChannel",
        )
        .await
    }

    /// Answers a ringing channel (a call sent to `Stasis()` before `Answer()`).
    pub async fn answer(&self, channel_id: &str) -> Result<(), AriError> {
        self.send_empty(
            reqwest::Method::POST,
            &format!("/channels/{channel_id}/answer"),
            &[],
            "answer",
        )
        .await
    }

    /// Sends a channel in the application to `endpoint` instead (the transfer).
    pub async fn redirect(&self, channel_id: &str, endpoint: &str) -> Result<(), AriError> {
        self.send_empty(
            reqwest::Method::POST,
            &format!("/channels/{channel_id}/redirect"),
            &[("endpoint", endpoint)],
            "redirect",
        )
        .await
    }

    /// Plays key presses on a channel, as the channel sends them (RFC 4733 or in band), 100 ms each and
    /// 100 ms apart.
    pub async fn send_dtmf(&self, channel_id: &str, digits: &str) -> Result<(), AriError> {
        self.send_empty(
            reqwest::Method::POST,
            &format!("/channels/{channel_id}/dtmf"),
            &[("dtmf", digits), ("duration", "100"), ("between", "100")],
            "dtmf",
        )
        .await
    }

    /// Hangs a channel up; one already gone is not an error.
    pub async fn hang_up(&self, channel_id: &str) -> Result<(), AriError> {
        self.send_gone_ok(&format!("/channels/{channel_id}"), "hang up")
            .await
    }

    /// Destroys a bridge; one already gone is not an error.
    pub async fn destroy_bridge(&self, bridge_id: &str) -> Result<(), AriError> {
        self.send_gone_ok(&format!("/bridges/{bridge_id}"), "destroy bridge")
            .await
    }

    async fn send_gone_ok(&self, path: &str, what: &'static str) -> Result<(), AriError> {
        match self
            .send_empty(reqwest::Method::DELETE, path, &[], what)
            .await
        {
            Err(AriError::Refused { status: 404, .. }) => Ok(()),
            other => other,
        }
    }

    async fn send_empty(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        what: &'static str,
    ) -> Result<(), AriError> {
        self.request(method, path, query, what).await.map(|_| ())
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        what: &'static str,
    ) -> Result<Channel, AriError> {
        let body = self.request(method, path, query, what).await?;
        serde_json::from_str(&body).map_err(|e| {
            AriError::BadJson(format!(
                "{what}: {e}: {}",
                body.chars().take(120).collect::<String>()
            ))
        })
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        what: &'static str,
    ) -> Result<String, AriError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |source| AriError::Unreachable {
            url: url.clone(),
            source,
        };
        let response = self
            .http
            .request(method, &url)
            .basic_auth(&self.user, Some(&self.password))
            .query(query)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let body = response.text().await.map_err(unreachable)?;
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_str::<ErrorBody>(&body)
            .ok()
            .and_then(|e| e.message)
            .unwrap_or_else(|| body.chars().take(200).collect());
        Err(AriError::Refused {
            what,
            status: status.as_u16(),
            message,
        })
    }
}

/// The dial string for `target` (an E.164 number or a `sip:user@host` URI) from ARI_ENDPOINT's template.
pub fn endpoint_for(template: &str, target: &str) -> String {
    template.replace("{number}", target.strip_prefix("sip:").unwrap_or(target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decoding_never_panics(message in ".{0,300}") {
            let _ = decode_event(&message);
        }

        #[test]
        fn decoding_near_valid_events_never_panics(
            kind in prop_oneof!["StasisStart", "StasisEnd", "ChannelDestroyed"],
            value in prop_oneof![Just("null".to_string()), Just("[]".to_string()), Just("{}".to_string()), "-?[0-9]{1,25}", "\"[a-zA-Z0-9.]{0,40}\""],
        ) {
            for event in [
                format!(r#"{{"type":"{kind}","channel":{value},"args":{value}}}"#),
                format!(r#"{{"type":"{kind}","channel":{{"id":{value},"caller":{value}}},"args":[{value}]}}"#),
            ] {
                let _ = decode_event(&event);
            }
        }
    }

    #[test]
    fn stasis_events_are_read_as_ari_documents_them() {
        let start = r#"{"type":"StasisStart","timestamp":"2026-11-29T05:00:00.000+0000",
            "args":["0193-abc"],"channel":{"id":"1732856400.12","name":"PJSIP/trunk-0000000c",
            "state":"Up","caller":{"name":"","number":"+14155550199"},"connected":{"name":"","number":""},
            "accountcode":"","dialplan":{"context":"from-trunk","exten":"100","priority":2},
            "creationtime":"2026-11-29T05:00:00.000+0000","language":"en"},"application":"switchboard"}"#;
        match decode_event(start).unwrap() {
            Event::StasisStart { channel, args } => {
                assert_eq!(channel.id, "1732856400.12");
                assert_eq!(channel.caller.number, "+14155550199");
                assert_eq!(args, ["0193-abc"]);
            }
            other => panic!("{other:?}"),
        }
        let end =
            r#"{"type":"StasisEnd","channel":{"id":"1732856400.12"},"application":"switchboard"}"#;
        assert!(
            matches!(decode_event(end).unwrap(), Event::StasisEnd { channel } if channel.id == "1732856400.12")
        );
        assert_eq!(
            decode_event(r#"{"type":"ChannelDtmfReceived","digit":"5"}"#).unwrap(),
            Event::Other("ChannelDtmfReceived".into())
        );
        assert!(decode_event(r#"{"type":"StasisStart"}"#).is_err());
        assert!(decode_event("not json").is_err());
    }

    #[test]
    fn dial_strings_come_from_the_template() {
        assert_eq!(
            endpoint_for("PJSIP/{number}@trunk", "+14155550111"),
            "PJSIP/+14155550111@trunk"
        );
        assert_eq!(
            endpoint_for("PJSIP/{number}", "sip:queue@pbx.example.com"),
            "PJSIP/queue@pbx.example.com"
        );
    }

    #[test]
    fn the_events_socket_carries_the_credentials_encoded() {
        let client = Client::new("http://asterisk:8088/", "sb", "p&w");
        assert_eq!(
            client.events_url("switchboard"),
            "ws://asterisk:8088/ari/events?app=switchboard&api_key=sb%3Ap%26w"
        );
    }
}
