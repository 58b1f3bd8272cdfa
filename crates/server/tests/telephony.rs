//! Twilio and Asterisk at the server's edge, on their wire formats: webhooks are refused (403) unless
//! signed with TWILIO_AUTH_TOKEN and answered with TwiML when they are; an outbound call through the API
//! sends the REST request Twilio documents to a local stand-in that records it; status callbacks move the
//! call record; a Media Stream without its call's token is closed; an AudioSocket UUID names a call.
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
use switchboard_core::config::DatabaseTarget;
use switchboard_core::{CallId, Config};
use switchboard_server::{AppState, Readiness, Role, app, generate_api_key, serve_audiosocket};
use switchboard_store::Database;
use switchboard_telephony::audiosocket::{self, Frame};
use switchboard_telephony::twilio::signature::sign;
use tokio_tungstenite::tungstenite::Message;
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
    let calls = server
        .state
        .database
        .list_calls(&Default::default())
        .await
        .unwrap();
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
    let calls = server
        .state
        .database
        .list_calls(&Default::default())
        .await
        .unwrap();
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
        body["provider_call_sid"],
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
    let calls = server
        .state
        .database
        .list_calls(&Default::default())
        .await
        .unwrap();
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
async fn an_audiosocket_uuid_names_a_new_inbound_call_and_bad_frames_are_skipped() {
    let server = Server::new(&[]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(serve_audiosocket(
        listener,
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
    // This node has no models: the call is recorded, then refused with a hang-up.
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
    let call = server
        .state
        .database
        .call(CallId::from(uuid))
        .await
        .unwrap()
        .expect("the UUID's call is recorded");
    assert_eq!(call.direction, switchboard_core::CallDirection::Inbound);
    assert!(call.context.unwrap().contains("asterisk"));

    // A connection that never names its call is dropped; the listener goes on serving.
    let mut silent = tokio::net::TcpStream::connect(address).await.unwrap();
    silent.write_all(&[0x10, 0x00, 0x02, 0, 0]).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(8), silent.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a connection without a UUID is closed");
    assert!(tokio::net::TcpStream::connect(address).await.is_ok());
    stop.cancel();
}
