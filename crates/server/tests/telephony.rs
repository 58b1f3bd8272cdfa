//! Twilio and Asterisk at the server's edge, on their wire formats: webhooks are refused (403) unless
//! signed with TWILIO_AUTH_TOKEN and answered with TwiML when they are; an outbound call through the API
//! sends the REST request Twilio documents to a local stand-in that records it; status callbacks move the
//! call record; a Media Stream without its call's token is closed; an AudioSocket UUID names a call; ARI
//! (against a local stand-in speaking ARI's REST and event JSON) bridges Stasis calls to the AudioSocket
//! listener, places outbound calls, and transfers by redirecting the caller's channel.
//! Whole calls over both transports, with models and real speech, are in the binary's call tests.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use switchboard_core::config::{DatabaseTarget, Sources};
use switchboard_core::{CallId, Config};
use switchboard_server::{
    AppState, Readiness, Role, app, generate_api_key, run_ari_events, serve_audiosocket,
};
use switchboard_store::Database;
use switchboard_telephony::audiosocket::{self, Frame};
use switchboard_telephony::twilio::signature::sign;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "test-auth-token-0123";
const PUBLIC_URL: &str = "https://agent.example.com";

struct Server {
    app: Router,
    state: AppState,
    _dir: tempfile::TempDir,
}

impl Server {
    /// A node with a Twilio account, PUBLIC_URL, and `env` on top.
    async fn new(env: &[(&str, &str)]) -> Self {
        let mut vars = vec![
            ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
            ("TWILIO_PHONE_NUMBER", "+18005550100"),
            ("PUBLIC_URL", PUBLIC_URL),
        ];
        vars.extend_from_slice(env);
        Self::with(&vars).await
    }

    /// A node configured by exactly `env`.
    async fn with(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let vars: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = Config::from_layers(None, &|k| {
            vars.iter()
                .rev()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        })
        .unwrap();
        let database = Database::connect(&DatabaseTarget::Sqlite {
            path: dir.path().join("sb.db"),
        })
        .await
        .unwrap();
        database.migrate().await.unwrap();
        let state = AppState::new(Arc::new(config), Readiness::default(), database).unwrap();
        Self {
            app: app(state.clone()),
            state,
            _dir: dir,
        }
    }

    /// A webhook POST as Twilio sends it, signed with `token` (None: no signature header).
    async fn webhook(
        &self,
        path_and_query: &str,
        params: &[(&str, &str)],
        token: Option<&str>,
    ) -> (StatusCode, String) {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path_and_query)
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(token) = token {
            let signature = sign(token, &format!("{PUBLIC_URL}{path_and_query}"), &params);
            request = request.header("X-Twilio-Signature", signature);
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Every call recorded, newest first.
    async fn calls(&self) -> Vec<switchboard_store::CallRecord> {
        self.state
            .database
            .list_calls(&switchboard_store::CallFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
    }

    async fn create_call(&self, body: Value) -> (StatusCode, Value) {
        let key = generate_api_key("test", Role::Supervisor).unwrap();
        self.state
            .database
            .insert_api_key(&key.record)
            .await
            .unwrap();
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/calls")
            .header("authorization", format!("Bearer {}", key.key))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

const CALL_PARAMS: [(&str, &str); 5] = [
    ("AccountSid", ACCOUNT_SID),
    ("CallSid", "CA0123456789abcdef0123456789abcdef"),
    ("From", "+14155550199"),
    ("To", "+18005550100"),
    ("Direction", "inbound"),
];

#[tokio::test]
async fn a_webhook_with_a_wrong_or_missing_signature_is_403() {
    let server = Server::new(&[]).await;
    for path in ["/twilio/voice", "/twilio/status"] {
        let (status, body) = server
            .webhook(path, &CALL_PARAMS, Some("not-the-token"))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(body.contains("X-Twilio-Signature"), "{body}");
        let (status, _) = server.webhook(path, &CALL_PARAMS, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path} unsigned");
    }
    // A parameter changed after signing is refused too.
    let params: Vec<(String, String)> = CALL_PARAMS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let signature = sign(AUTH_TOKEN, &format!("{PUBLIC_URL}/twilio/voice"), &params);
    let request = Request::builder()
        .method(Method::POST)
        .uri("/twilio/voice")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", signature)
        .body(Body::from(
            "AccountSid=AC0123456789abcdef0123456789abcdef&CallSid=CA0123456789abcdef0123456789abcdef\
             &From=%2B19995550000&To=%2B18005550100&Direction=inbound",
        ))
        .unwrap();
    let response = server.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Nothing was recorded for the refused requests.
    let calls = server.calls().await;
    assert!(calls.is_empty(), "{calls:?}");
}

#[tokio::test]
async fn a_signed_voice_webhook_is_answered_with_twiml_and_recorded() {
    let server = Server::new(&[]).await;
    // No models on this node: the caller is told to call again, in Twilio's voice, and the call is
    // recorded as refused for capacity.
    let (status, twiml) = server
        .webhook("/twilio/voice", &CALL_PARAMS, Some(AUTH_TOKEN))
        .await;
    assert_eq!(status, StatusCode::OK, "{twiml}");
    assert!(
        twiml.contains("<Say>") && twiml.contains("<Hangup/>"),
        "{twiml}"
    );
    let calls = server.calls().await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].from_number.as_deref(), Some("+14155550199"));
    assert_eq!(calls[0].end_reason.as_deref(), Some("no_capacity"));
    let context: Value = serde_json::from_str(calls[0].context.as_deref().unwrap()).unwrap();
    assert_eq!(context["source"], "twilio");
    assert_eq!(context["call_sid"], "CA0123456789abcdef0123456789abcdef");
}

#[tokio::test]
async fn without_twilio_credentials_the_webhooks_say_what_is_missing() {
    let server = Server::with(&[]).await;
    let (status, body) = server
        .webhook("/twilio/voice", &CALL_PARAMS, Some(AUTH_TOKEN))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("TWILIO_AUTH_TOKEN"), "{body}");
}

/// One request the stand-in received: its path, headers and form.
type Recorded = (String, HeaderMap, Vec<(String, String)>);

/// A stand-in for Twilio's REST API: records every request and answers with Twilio's documented JSON.
struct TwilioStandIn {
    url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl TwilioStandIn {
    async fn start(status: StatusCode, answer: Value) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let router = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let recorded = recorded.clone();
            let answer = answer.clone();
            async move {
                let form = url::form_urlencoded::parse(&body).into_owned().collect();
                recorded
                    .lock()
                    .unwrap()
                    .push((uri.path().to_owned(), headers, form));
                (status, axum::Json(answer))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, requests }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn values<'a>(form: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    form.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[tokio::test]
async fn an_outbound_call_sends_twilios_documented_rest_request() {
    let twilio = TwilioStandIn::start(
        StatusCode::CREATED,
        json!({
            "sid": "CAfeedfacefeedfacefeedfacefeedface",
            "account_sid": ACCOUNT_SID,
            "to": "+14155550123",
            "from": "+18005550100",
            "status": "queued",
            "api_version": "2010-04-01",
            "uri": "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Calls/CAfeedfacefeedfacefeedfacefeedface.json"
        }),
    )
    .await;
    let server = Server::new(&[
        ("TELEPHONY_PROVIDER", "twilio"),
        ("TWILIO_API_URL", &twilio.url),
    ])
    .await;
    let (status, body) = server
        .create_call(json!({"to_number": "+14155550123"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["provider_call_id"],
        "CAfeedfacefeedfacefeedfacefeedface"
    );
    assert_eq!(body["status"], "queued");
    let call_id = body["id"].as_str().unwrap();

    let requests = twilio.requests();
    assert_eq!(requests.len(), 1);
    let (path, headers, form) = &requests[0];
    assert_eq!(
        path,
        &format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json")
    );
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"));
    assert_eq!(headers["authorization"], format!("Basic {basic}").as_str());
    assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(values(form, "To"), ["+14155550123"]);
    assert_eq!(values(form, "From"), ["+18005550100"]);
    assert_eq!(
        values(form, "Url"),
        [format!("{PUBLIC_URL}/twilio/voice?call_id={call_id}").as_str()]
    );
    assert_eq!(values(form, "Method"), ["POST"]);
    assert_eq!(
        values(form, "StatusCallback"),
        [format!("{PUBLIC_URL}/twilio/status?call_id={call_id}").as_str()]
    );
    assert_eq!(
        values(form, "StatusCallbackEvent"),
        ["initiated", "ringing", "answered", "completed"]
    );

    // Twilio then reports progress on the status callback, signed over the URL with our call id.
    let status_path = format!("/twilio/status?call_id={call_id}");
    let mut params = CALL_PARAMS.to_vec();
    params.push(("CallStatus", "ringing"));
    let (status, _) = server
        .webhook(&status_path, &params, Some(AUTH_TOKEN))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let id: CallId = call_id.parse().unwrap();
    let call = server.state.database.call(id).await.unwrap().unwrap();
    assert_eq!(call.status, "ringing");
    params.pop();
    params.push(("CallStatus", "no-answer"));
    let (status, _) = server
        .webhook(&status_path, &params, Some(AUTH_TOKEN))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let call = server.state.database.call(id).await.unwrap().unwrap();
    assert_eq!(call.status, "ended");
    assert_eq!(call.end_reason.as_deref(), Some("no_answer"));
}

#[tokio::test]
async fn a_live_call_is_transferred_and_ended_with_twilios_documented_updates() {
    let twilio = TwilioStandIn::start(
        StatusCode::OK,
        json!({"sid": "CA0123456789abcdef0123456789abcdef", "status": "in-progress"}),
    )
    .await;
    let client =
        switchboard_telephony::twilio::rest::Client::new(&twilio.url, ACCOUNT_SID, AUTH_TOKEN);
    let sid = "CA0123456789abcdef0123456789abcdef";
    let dial = switchboard_telephony::twilio::twiml::dial("+14155550111", Some("+18005550100"));
    client.redirect(sid, &dial).await.unwrap();
    client.hang_up(sid).await.unwrap();
    let requests = twilio.requests();
    let path = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json");
    assert_eq!(requests[0].0, path);
    assert_eq!(values(&requests[0].2, "Twiml"), [dial.as_str()]);
    assert_eq!(requests[1].0, path);
    assert_eq!(values(&requests[1].2, "Status"), ["completed"]);
}

#[tokio::test]
async fn when_twilio_refuses_the_call_the_api_says_why_and_the_record_is_closed() {
    let twilio = TwilioStandIn::start(
        StatusCode::BAD_REQUEST,
        json!({
            "code": 21211,
            "message": "The 'To' number +14155550123 is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211",
            "status": 400
        }),
    )
    .await;
    let server = Server::new(&[
        ("TELEPHONY_PROVIDER", "twilio"),
        ("TWILIO_API_URL", &twilio.url),
    ])
    .await;
    let (status, body) = server
        .create_call(json!({"to_number": "+14155550123"}))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "provider_refused");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("21211") && message.contains("not a valid phone number"),
        "{message}"
    );
    let calls = server.calls().await;
    assert_eq!(calls[0].end_reason.as_deref(), Some("provider_refused"));
}

/// Serves the app on a loopback port, for WebSocket clients.
async fn serve(server: &Server) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = server.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("ws://{address}")
}

#[tokio::test]
async fn a_media_stream_that_cannot_show_its_calls_token_is_closed() {
    let server = Server::new(&[]).await;
    let base = serve(&server).await;
    let call_id = CallId::new().to_string();
    for token in [None, Some("forged")] {
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("{base}/twilio/media"))
            .await
            .unwrap();
        let mut custom = json!({ "call_id": call_id });
        if let Some(token) = token {
            custom["stream_token"] = json!(token);
        }
        for message in [
            json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
            json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
                "streamSid": "MZ1", "accountSid": ACCOUNT_SID, "callSid": "CA1",
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": custom }}),
        ] {
            socket
                .send(Message::text(message.to_string()))
                .await
                .unwrap();
        }
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Close(frame) = message {
                    return frame;
                }
            }
            None
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(u16::from(closed.code), 1008);
        assert!(closed.reason.contains("token"), "{}", closed.reason);
    }
}

#[tokio::test]
async fn audiosocket_skips_bad_frames_refuses_a_call_it_cannot_take_and_strangers_leaving_no_record()
 {
    let server = Server::new(&[]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(serve_audiosocket(
        listener,
        Sources::parse("127.0.0.1").unwrap(),
        server.state.clone(),
        stop.clone(),
    ));

    let uuid = uuid::Uuid::now_v7();
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A malformed message (a UUID of 3 bytes) and an unknown kind first: skipped, not fatal.
    socket
        .write_all(&[0x01, 0x00, 0x03, 1, 2, 3])
        .await
        .unwrap();
    socket.write_all(&[0x42, 0x00, 0x01, 7]).await.unwrap();
    socket
        .write_all(&audiosocket::encode(&Frame::Uuid(uuid)))
        .await
        .unwrap();
    // This node has no models: the call is refused with a hang-up before anything is written.
    let mut buffer = Vec::new();
    let frame = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some((frame, _)) = audiosocket::decode(&buffer) {
                return frame.unwrap();
            }
            let mut chunk = [0u8; 64];
            let n = socket.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed without a hang-up");
            buffer.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .unwrap();
    assert_eq!(frame, Frame::Hangup);
    assert!(
        server
            .state
            .database
            .call(CallId::from(uuid))
            .await
            .unwrap()
            .is_none(),
        "a refused call leaves no record"
    );

    // A stranger (another address than the one trusted) is closed before it is read.
    let stranger = tokio::net::TcpSocket::new_v4().unwrap();
    stranger.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut stranger = stranger.connect(address).await.unwrap();
    let theirs = uuid::Uuid::now_v7();
    let _ = stranger
        .write_all(&audiosocket::encode(&Frame::Uuid(theirs)))
        .await;
    let mut rest = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(5), stranger.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the stranger is closed at once");
    assert!(rest.is_empty(), "and told nothing");
    assert!(
        server
            .state
            .database
            .list_calls(&switchboard_store::CallFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty(),
        "no call record of either"
    );

    // A connection that never names its call is dropped; the listener goes on serving.
    let mut silent = tokio::net::TcpStream::connect(address).await.unwrap();
    silent.write_all(&[0x10, 0x00, 0x02, 0, 0]).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(8), silent.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a connection without a UUID is closed");
    assert!(tokio::net::TcpStream::connect(address).await.is_ok());
    stop.cancel();
}

/// One ARI request: method, path and query.
type AriRequest = (Method, String, Vec<(String, String)>);

/// A stand-in for Asterisk's ARI: records every REST request (method, path, query) and answers as ARI
/// documents; its events socket sends what the test pushes.
struct AriStandIn {
    url: String,
    requests: Arc<Mutex<Vec<AriRequest>>>,
    events: tokio::sync::broadcast::Sender<String>,
    subscribed: Arc<Mutex<Option<String>>>,
}

impl AriStandIn {
    async fn start() -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (events, _) = tokio::sync::broadcast::channel::<String>(16);
        let subscribed = Arc::new(Mutex::new(None));
        let (feed, seen) = (events.clone(), subscribed.clone());
        let recorded = requests.clone();
        let router = Router::new()
            .route(
                "/ari/events",
                axum::routing::get(
                    move |uri: Uri, upgrade: axum::extract::ws::WebSocketUpgrade| {
                        let mut feed = feed.subscribe();
                        *seen.lock().unwrap() = uri.query().map(str::to_owned);
                        async move {
                            upgrade.on_upgrade(move |mut socket| async move {
                                while let Ok(event) = feed.recv().await {
                                    if socket
                                        .send(axum::extract::ws::Message::Text(event.into()))
                                        .await
                                        .is_err()
                                    {
                                        return;
                                    }
                                }
                            })
                        }
                    },
                ),
            )
            .fallback(move |method: Method, uri: Uri| {
                let recorded = recorded.clone();
                async move {
                    let query: Vec<(String, String)> =
                        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
                            .into_owned()
                            .collect();
                    let id = query
                        .iter()
                        .find(|(k, _)| k == "channelId" || k == "bridgeId")
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    recorded
                        .lock()
                        .unwrap()
                        .push((method, uri.path().to_owned(), query));
                    axum::Json(
                        json!({ "id": id, "name": "PJSIP/trunk-00000001", "state": "Down",
                        "caller": {"name": "", "number": ""} }),
                    )
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            url,
            requests,
            events,
            subscribed,
        }
    }

    /// Waits until a request to `path` by `method` arrives; returns its query.
    async fn wait_for(&self, method: Method, path: &str) -> Vec<(String, String)> {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some((_, _, query)) = self
                    .requests
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|(m, p, _)| *m == method && p == path)
                {
                    return query.clone();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {method} {path}: {:?}", self.requests.lock().unwrap()))
    }

    async fn push(&self, event: Value) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while self.events.receiver_count() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the server subscribes to the application's events");
        self.events.send(event.to_string()).unwrap();
    }
}

fn query_value<'a>(query: &'a [(String, String)], name: &str) -> &'a str {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// A node with ARI pointed at `ari` and its AudioSocket listener, which ARI's media goes to, running.
async fn ari_node(ari: &AriStandIn, extra: &[(&str, &str)]) -> (Server, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let media = listener.local_addr().unwrap().to_string();
    let mut env = vec![
        ("TELEPHONY_PROVIDER", "asterisk"),
        ("ARI_URL", ari.url.as_str()),
        ("ARI_USER", "switchboard"),
        ("ARI_PASSWORD", "ari-secret"),
        ("ARI_ENDPOINT", "PJSIP/{number}@trunk"),
        ("ARI_MEDIA_ADDRESS", media.as_str()),
    ];
    env.extend_from_slice(extra);
    let server = Server::with(&env).await;
    let stop = CancellationToken::new();
    tokio::spawn(serve_audiosocket(
        listener,
        Sources::loopback(),
        server.state.clone(),
        stop.clone(),
    ));
    tokio::spawn(run_ari_events(server.state.clone(), stop.clone()));
    (server, stop)
}

/// StasisStart of a caller's channel, as Asterisk sends it for `Stasis(switchboard)`.
fn stasis_start(channel: &str, args: &[&str], state: &str) -> Value {
    json!({"type": "StasisStart", "application": "switchboard", "args": args,
        "timestamp": "2026-11-29T05:00:00.000+0000",
        "channel": {"id": channel, "name": "PJSIP/trunk-00000001", "state": state,
            "caller": {"name": "", "number": "+14155550199"},
            "dialplan": {"context": "from-trunk", "exten": "100", "priority": 2}}})
}

#[tokio::test]
async fn ari_bridges_a_stasis_call_to_the_audiosocket_and_cleans_up_when_the_caller_leaves() {
    let ari = AriStandIn::start().await;
    let (server, stop) = ari_node(&ari, &[]).await;
    // Sent to Stasis() while still ringing: it is answered first.
    ari.push(stasis_start("1732856400.1", &[], "Ring")).await;
    ari.wait_for(Method::POST, "/ari/channels/1732856400.1/answer")
        .await;
    let media = ari
        .wait_for(Method::POST, "/ari/channels/externalMedia")
        .await;
    let subscribed = ari.subscribed.lock().unwrap().clone().unwrap();
    assert!(
        subscribed.contains("app=switchboard")
            && subscribed.contains("api_key=switchboard%3Aari-secret"),
        "{subscribed}"
    );
    let uuid = query_value(&media, "data").to_owned();
    let call_id: CallId = uuid.parse().unwrap();
    assert_eq!(query_value(&media, "app"), "switchboard");
    assert_eq!(query_value(&media, "channelId"), format!("{uuid}-media"));
    assert_eq!(query_value(&media, "encapsulation"), "audiosocket");
    assert_eq!(query_value(&media, "transport"), "tcp");
    assert_eq!(query_value(&media, "format"), "slin");
    let bridge = ari.wait_for(Method::POST, "/ari/bridges").await;
    assert_eq!(query_value(&bridge, "type"), "mixing");
    assert_eq!(query_value(&bridge, "bridgeId"), uuid);
    let added = ari
        .wait_for(Method::POST, &format!("/ari/bridges/{uuid}/addChannel"))
        .await;
    assert_eq!(
        query_value(&added, "channel"),
        format!("1732856400.1,{uuid}-media")
    );
    let call = server.state.database.call(call_id).await.unwrap().unwrap();
    assert_eq!(call.from_number.as_deref(), Some("+14155550199"));
    assert_eq!(call.direction, switchboard_core::CallDirection::Inbound);

    // The caller hangs up: the media channel and the bridge go too.
    ari.push(json!({"type": "StasisEnd", "application": "switchboard",
        "channel": {"id": "1732856400.1"}}))
        .await;
    ari.wait_for(Method::DELETE, &format!("/ari/channels/{uuid}-media"))
        .await;
    ari.wait_for(Method::DELETE, &format!("/ari/bridges/{uuid}"))
        .await;
    stop.cancel();
}

#[tokio::test]
async fn an_ari_caller_the_node_cannot_serve_is_hung_up_not_left_in_silence() {
    let ari = AriStandIn::start().await;
    let (server, stop) = ari_node(&ari, &[]).await;
    ari.push(stasis_start("1732856400.2", &[], "Up")).await;
    let media = ari
        .wait_for(Method::POST, "/ari/channels/externalMedia")
        .await;
    // Asterisk's external media channel connects to our AudioSocket listener with the call's UUID; this
    // node has no models, so the call is refused and the caller's channel hung up.
    let uuid: uuid::Uuid = query_value(&media, "data").parse().unwrap();
    let address = server
        .state
        .config
        .telephony
        .ari
        .as_ref()
        .unwrap()
        .media_address
        .clone();
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    use tokio::io::AsyncWriteExt;
    socket
        .write_all(&audiosocket::encode(&Frame::Uuid(uuid)))
        .await
        .unwrap();
    ari.wait_for(Method::DELETE, "/ari/channels/1732856400.2")
        .await;
    ari.wait_for(Method::DELETE, &format!("/ari/bridges/{uuid}"))
        .await;
    stop.cancel();
}

#[tokio::test]
async fn ari_places_outbound_calls_sends_their_keys_and_transfers_by_redirecting_the_channel() {
    let ari = AriStandIn::start().await;
    let (server, stop) = ari_node(&ari, &[("TRANSFER_TARGET", "+14155550111")]).await;
    let (status, body) = server
        .create_call(json!({"to_number": "+14155550123"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let call_id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(body["provider_call_id"], call_id.as_str());
    let originate = ari.wait_for(Method::POST, "/ari/channels").await;
    assert_eq!(
        query_value(&originate, "endpoint"),
        "PJSIP/+14155550123@trunk"
    );
    assert_eq!(query_value(&originate, "app"), "switchboard");
    assert_eq!(query_value(&originate, "appArgs"), call_id);
    assert_eq!(query_value(&originate, "channelId"), call_id);

    // Answered: the channel enters the application with our call id and is bridged to that call.
    ari.push(stasis_start(&call_id, &[&call_id], "Up")).await;
    let media = ari
        .wait_for(Method::POST, "/ari/channels/externalMedia")
        .await;
    assert_eq!(query_value(&media, "data"), call_id);
    ari.wait_for(Method::POST, &format!("/ari/bridges/{call_id}/addChannel"))
        .await;
    // Key presses for the far end (an IVR) go to the caller's channel.
    let id: CallId = call_id.parse().unwrap();
    switchboard_server::ari::send_keys(&server.state, id, "12#").await;
    let dtmf = ari
        .wait_for(Method::POST, &format!("/ari/channels/{call_id}/dtmf"))
        .await;
    assert_eq!(query_value(&dtmf, "dtmf"), "12#");
    // The call ends in a transfer: the caller's channel is redirected to TRANSFER_TARGET.
    let transferred = switchboard_session::EndReason::Transferred("the caller asked".into());
    switchboard_server::ari::finish(&server.state, id, Some(&transferred)).await;
    let redirect = ari
        .wait_for(Method::POST, &format!("/ari/channels/{call_id}/redirect"))
        .await;
    assert_eq!(
        query_value(&redirect, "endpoint"),
        "PJSIP/+14155550111@trunk"
    );
    ari.wait_for(Method::DELETE, &format!("/ari/channels/{call_id}-media"))
        .await;
    assert!(
        !ari.requests
            .lock()
            .unwrap()
            .iter()
            .any(|(m, p, _)| *m == Method::DELETE && p == &format!("/ari/channels/{call_id}")),
        "a transferred caller is not hung up"
    );
    stop.cancel();
}
