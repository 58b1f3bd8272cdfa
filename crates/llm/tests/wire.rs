//! The HTTP engines against local servers that speak Ollama's and OpenAI's documented streaming wire
//! formats, bodies cut into arbitrary chunks, tool calls streamed in pieces; and the resilience layer
//! against servers that refuse, fail, stall, or are not there at all.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use serde_json::{Value, json};
use switchboard_llm::{
    ChatEvent, ChatModel, ChatRequest, CircuitBreaker, EventStream, FallbackChain, LlmError,
    Message, OllamaChat, OpenAiChat, Resilient, RetryPolicy, ToolSpec, Usage,
};

/// What a fake server does with a request.
#[derive(Clone)]
enum Reply {
    /// 200 with this body, cut into pieces of `chunk` bytes, `delay` before the first.
    Stream {
        body: String,
        chunk: usize,
        delay: Duration,
    },
    /// This status and JSON body.
    Status(u16, Value),
}

#[derive(Default)]
struct Recorded {
    bodies: Vec<Value>,
    authorization: Vec<Option<String>>,
}

/// Serves `reply` at `path` on a free loopback port; returns the base URL and what it received.
async fn serve(path: &'static str, reply: Reply) -> (String, Arc<Mutex<Recorded>>) {
    let recorded = Arc::new(Mutex::new(Recorded::default()));
    let seen = recorded.clone();
    let handler = move |headers: HeaderMap, body: Bytes| {
        let reply = reply.clone();
        let seen = seen.clone();
        async move {
            {
                let mut seen = seen.lock().unwrap();
                seen.bodies.push(serde_json::from_slice(&body).unwrap());
                seen.authorization.push(
                    headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_owned()),
                );
            }
            match reply {
                Reply::Status(code, body) => {
                    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
                }
                Reply::Stream { body, chunk, delay } => {
                    let pieces: Vec<Vec<u8>> = body
                        .into_bytes()
                        .chunks(chunk)
                        .map(<[u8]>::to_vec)
                        .collect();
                    let stream = futures_util::stream::iter(pieces).then(move |piece| async move {
                        tokio::time::sleep(delay).await;
                        Ok::<_, std::io::Error>(piece)
                    });
                    Response::new(Body::from_stream(stream))
                }
            }
        }
    };
    let app = axum::Router::new().route(path, post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), recorded)
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::system("You take insurance claims."),
            Message::user("My name is Ana Lopez, email ana@example.com."),
        ],
        tools: vec![ToolSpec {
            name: "update_claim".into(),
            description: "Set one field of the claim.".into(),
            parameters: json!({"type": "object", "properties": {
                "field": {"type": "string"}, "value": {"type": "string"}}, "required": ["field", "value"]}),
        }],
        temperature: Some(0.2),
        max_tokens: Some(128),
        response_schema: None,
        background: false,
    }
}

async fn collect(stream: EventStream) -> Vec<Result<ChatEvent, LlmError>> {
    stream.collect().await
}

fn ok_events(events: Vec<Result<ChatEvent, LlmError>>) -> Vec<ChatEvent> {
    events.into_iter().map(Result::unwrap).collect()
}

const TIMEOUT: Duration = Duration::from_secs(2);

fn ollama_body() -> String {
    [
        json!({"model": "llama3.2:3b", "created_at": "2026-11-28T10:00:00Z", "message": {"role": "assistant", "content": "Thank you, "}, "done": false}),
        json!({"model": "llama3.2:3b", "created_at": "2026-11-28T10:00:00Z", "message": {"role": "assistant", "content": "Ana."}, "done": false}),
        json!({"model": "llama3.2:3b", "created_at": "2026-11-28T10:00:01Z", "message": {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "update_claim", "arguments": {"field": "caller_name", "value": "Ana Lopez"}}},
            {"function": {"name": "update_claim", "arguments": {"field": "email", "value": "ana@example.com"}}}]}, "done": false}),
        json!({"model": "llama3.2:3b", "created_at": "2026-11-28T10:00:01Z", "message": {"role": "assistant", "content": ""},
            "done": true, "done_reason": "stop", "total_duration": 4_883_583_458u64, "prompt_eval_count": 26, "eval_count": 12}),
    ]
    .iter()
    .map(|v| format!("{v}\n"))
    .collect()
}

#[tokio::test]
async fn ollama_streams_text_and_tool_calls_whatever_the_chunking() {
    for chunk in [1, 7, 64, 100_000] {
        let (base, recorded) = serve(
            "/api/chat",
            Reply::Stream {
                body: ollama_body(),
                chunk,
                delay: Duration::ZERO,
            },
        )
        .await;
        let engine = OllamaChat::new(&base, "llama3.2:3b", TIMEOUT).unwrap();
        let events = ok_events(collect(engine.chat(&request()).await.unwrap()).await);
        let text: String = events
            .iter()
            .filter_map(|e| match e {
                ChatEvent::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "Thank you, Ana.", "chunk {chunk}");
        let calls: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                ChatEvent::ToolCall(c) => Some((c.name.as_str(), c.arguments.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            calls,
            [
                (
                    "update_claim",
                    json!({"field": "caller_name", "value": "Ana Lopez"})
                ),
                (
                    "update_claim",
                    json!({"field": "email", "value": "ana@example.com"})
                ),
            ]
        );
        assert_eq!(
            events.last(),
            Some(&ChatEvent::Done(Usage {
                prompt_tokens: Some(26),
                completion_tokens: Some(12),
                finish_reason: Some("stop".into()),
            }))
        );
        // The request as Ollama documents it.
        let body = recorded.lock().unwrap().bodies[0].clone();
        assert_eq!(body["model"], "llama3.2:3b");
        assert_eq!(body["stream"], true);
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "You take insurance claims."})
        );
        assert_eq!(body["tools"][0]["type"], "function");
        assert_eq!(body["tools"][0]["function"]["name"], "update_claim");
        assert_eq!(
            body["options"],
            json!({"temperature": 0.2f32, "num_predict": 128})
        );
    }
}

fn openai_body() -> String {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_764_324_000, "model": "qwen",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let events = [
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Got it"}), Value::Null),
        chunk(json!({"content": ", thanks."}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "update_claim", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"field\": \"caller"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "update_claim", "arguments": "{\"field\":"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "_name\", \"value\": \"Ana Lopez\"}"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "function": {"arguments": " \"email\", \"value\": \"ana@example.com\"}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 31, "completion_tokens": 40, "total_tokens": 71}}),
    ];
    let mut body = String::from(": ping\n\n");
    for e in events {
        body.push_str(&format!("data: {e}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    body
}

#[tokio::test]
async fn openai_streams_text_and_assembles_tool_calls_from_pieces() {
    for chunk in [1, 13, 100_000] {
        let (base, recorded) = serve(
            "/v1/chat/completions",
            Reply::Stream {
                body: openai_body(),
                chunk,
                delay: Duration::ZERO,
            },
        )
        .await;
        let engine = OpenAiChat::new(
            &format!("{base}/v1"),
            "qwen",
            Some("sk-local".into()),
            TIMEOUT,
        )
        .unwrap();
        assert!(
            !format!("{engine:?}").contains("sk-local"),
            "the key leaks through Debug"
        );
        let events = ok_events(collect(engine.chat(&request()).await.unwrap()).await);
        assert_eq!(
            events,
            [
                ChatEvent::Text("Got it".into()),
                ChatEvent::Text(", thanks.".into()),
                ChatEvent::ToolCall(switchboard_llm::ToolCall {
                    id: "call_a".into(),
                    name: "update_claim".into(),
                    arguments: json!({"field": "caller_name", "value": "Ana Lopez"}),
                }),
                ChatEvent::ToolCall(switchboard_llm::ToolCall {
                    id: "call_b".into(),
                    name: "update_claim".into(),
                    arguments: json!({"field": "email", "value": "ana@example.com"}),
                }),
                ChatEvent::Done(Usage {
                    prompt_tokens: Some(31),
                    completion_tokens: Some(40),
                    finish_reason: Some("tool_calls".into()),
                }),
            ],
            "chunk {chunk}"
        );
        let recorded = recorded.lock().unwrap();
        assert_eq!(
            recorded.authorization[0].as_deref(),
            Some("Bearer sk-local")
        );
        let body = &recorded.bodies[0];
        assert_eq!(body["stream"], true);
        assert_eq!(body["max_tokens"], 128);
        assert_eq!(
            body["tools"][0]["function"]["parameters"]["required"],
            json!(["field", "value"])
        );
    }
}

#[tokio::test]
async fn a_tool_result_goes_back_in_each_wire_format() {
    let call = switchboard_llm::ToolCall {
        id: "call_a".into(),
        name: "search_documents".into(),
        arguments: json!({"query": "deductible"}),
    };
    let mut assistant = Message::assistant("");
    assistant.tool_calls.push(call.clone());
    let mut req = request();
    req.messages.push(assistant);
    req.messages.push(Message::tool_result(
        &call,
        "The deductible is 500 dollars.",
    ));

    let (base, recorded) = serve(
        "/v1/chat/completions",
        Reply::Stream {
            body: openai_body(),
            chunk: 1000,
            delay: Duration::ZERO,
        },
    )
    .await;
    let engine = OpenAiChat::new(&format!("{base}/v1"), "qwen", None, TIMEOUT).unwrap();
    collect(engine.chat(&req).await.unwrap()).await;
    let body = recorded.lock().unwrap().bodies[0].clone();
    assert_eq!(
        body["messages"][2]["tool_calls"][0]["function"]["arguments"],
        "{\"query\":\"deductible\"}"
    );
    assert_eq!(
        body["messages"][3],
        json!({"role": "tool", "content": "The deductible is 500 dollars.", "tool_call_id": "call_a"})
    );
    assert_eq!(recorded.lock().unwrap().authorization[0], None);

    let (base, recorded) = serve(
        "/api/chat",
        Reply::Stream {
            body: ollama_body(),
            chunk: 1000,
            delay: Duration::ZERO,
        },
    )
    .await;
    let engine = OllamaChat::new(&base, "llama3.2:3b", TIMEOUT).unwrap();
    collect(engine.chat(&req).await.unwrap()).await;
    let body = recorded.lock().unwrap().bodies[0].clone();
    assert_eq!(
        body["messages"][2]["tool_calls"][0]["function"]["arguments"],
        json!({"query": "deductible"})
    );
    assert_eq!(body["messages"][3]["tool_name"], "search_documents");
}

#[tokio::test]
async fn a_response_schema_goes_out_as_each_engine_documents_it() {
    let schema = json!({"type": "object", "properties": {"intent": {"enum": ["claim", "other"]}}});
    let mut req = request();
    req.response_schema = Some(schema.clone());

    let (base, recorded) = serve(
        "/v1/chat/completions",
        Reply::Stream {
            body: openai_body(),
            chunk: 1000,
            delay: Duration::ZERO,
        },
    )
    .await;
    let engine = OpenAiChat::new(&format!("{base}/v1"), "qwen", None, TIMEOUT).unwrap();
    collect(engine.chat(&req).await.unwrap()).await;
    let body = recorded.lock().unwrap().bodies[0].clone();
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["schema"], schema);

    let (base, recorded) = serve(
        "/api/chat",
        Reply::Stream {
            body: ollama_body(),
            chunk: 1000,
            delay: Duration::ZERO,
        },
    )
    .await;
    let engine = OllamaChat::new(&base, "llama3.2:3b", TIMEOUT).unwrap();
    collect(engine.chat(&req).await.unwrap()).await;
    assert_eq!(recorded.lock().unwrap().bodies[0]["format"], schema);
}

#[tokio::test]
async fn malformed_streams_are_errors_not_panics() {
    let cases = [
        (
            "/api/chat",
            "{\"message\": {\"content\": \"hi\"}, \"done\": false}\nnot json\n",
        ),
        (
            "/api/chat",
            "{\"message\": {\"content\": \"hi\"}, \"done\": false}\n",
        ),
        (
            "/api/chat",
            "{\"error\": \"model runner has unexpectedly stopped\"}\n",
        ),
        (
            "/v1/chat/completions",
            "data: {\"choices\": [{\"delta\": {\"content\": \"hi\"}}]}\n\n",
        ),
        (
            "/v1/chat/completions",
            "data: {\"choices\": [{\"delta\": {\"tool_calls\": [{\"index\": 0, \"function\": {\"name\": \"x\", \"arguments\": \"{oops\"}}]}, \"finish_reason\": \"tool_calls\"}]}\n\n",
        ),
        (
            "/v1/chat/completions",
            "data: {\"error\": {\"message\": \"context length exceeded\"}}\n\n",
        ),
    ];
    for (path, body) in cases {
        let (base, _) = serve(
            path,
            Reply::Stream {
                body: body.into(),
                chunk: 5,
                delay: Duration::ZERO,
            },
        )
        .await;
        let engine: Box<dyn ChatModel> = if path == "/api/chat" {
            Box::new(OllamaChat::new(&base, "m", TIMEOUT).unwrap())
        } else {
            Box::new(OpenAiChat::new(&format!("{base}/v1"), "m", None, TIMEOUT).unwrap())
        };
        let events = collect(engine.chat(&request()).await.unwrap()).await;
        assert!(matches!(events.last(), Some(Err(_))), "{body}: {events:?}");
        // Nothing follows the error.
        assert_eq!(events.iter().filter(|e| e.is_err()).count(), 1, "{body}");
    }
}

fn resilient(engine: impl ChatModel + 'static, timeout: Duration, attempts: u32) -> Resilient {
    Resilient::new(
        Arc::new(engine),
        timeout,
        RetryPolicy {
            attempts,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        },
        CircuitBreaker::new(3, Duration::from_secs(60)),
    )
}

#[tokio::test]
async fn server_errors_are_retried_and_client_errors_are_not() {
    let (base, recorded) = serve(
        "/api/chat",
        Reply::Status(500, json!({"error": "llama runner crashed"})),
    )
    .await;
    let engine = resilient(OllamaChat::new(&base, "m", TIMEOUT).unwrap(), TIMEOUT, 3);
    let error = engine.chat(&request()).await.err().unwrap();
    assert!(
        matches!(error, LlmError::Status { status: 500, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("llama runner crashed"));
    assert_eq!(recorded.lock().unwrap().bodies.len(), 3);

    let (base, recorded) = serve(
        "/api/chat",
        Reply::Status(
            404,
            json!({"error": "model \"m\" not found, try pulling it first"}),
        ),
    )
    .await;
    let engine = resilient(OllamaChat::new(&base, "m", TIMEOUT).unwrap(), TIMEOUT, 3);
    let error = engine.chat(&request()).await.err().unwrap();
    assert!(
        error.to_string().contains("try pulling it first"),
        "{error}"
    );
    assert_eq!(recorded.lock().unwrap().bodies.len(), 1);
}

#[tokio::test]
async fn a_silent_server_times_out_and_a_failing_one_opens_the_breaker() {
    let slow = Reply::Stream {
        body: ollama_body(),
        chunk: 1000,
        delay: Duration::from_secs(5),
    };
    let (base, recorded) = serve("/api/chat", slow).await;
    let engine = resilient(
        OllamaChat::new(&base, "m", TIMEOUT).unwrap(),
        Duration::from_millis(200),
        1,
    );
    for _ in 0..3 {
        let error = engine.chat(&request()).await.err().unwrap();
        assert!(matches!(error, LlmError::Timeout { .. }), "{error}");
    }
    // Three failures in a row: the breaker is open and the server is left alone.
    assert_eq!(engine.breaker_state(), switchboard_llm::BreakerState::Open);
    let error = engine.chat(&request()).await.err().unwrap();
    assert!(matches!(error, LlmError::CircuitOpen { .. }), "{error}");
    assert_eq!(recorded.lock().unwrap().bodies.len(), 3);
}

#[tokio::test]
async fn the_breaker_lets_one_trial_through_after_cooling_down() {
    let breaker = CircuitBreaker::new(2, Duration::from_millis(50));
    breaker.failure();
    assert!(breaker.acquire().is_ok());
    breaker.failure();
    assert!(breaker.acquire().is_err());
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(breaker.state(), switchboard_llm::BreakerState::HalfOpen);
    assert!(breaker.acquire().is_ok());
    assert!(breaker.acquire().is_err(), "only one trial at a time");
    breaker.failure();
    assert_eq!(breaker.state(), switchboard_llm::BreakerState::Open);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(breaker.acquire().is_ok());
    breaker.success();
    assert_eq!(breaker.state(), switchboard_llm::BreakerState::Closed);
}

#[tokio::test]
async fn an_unreachable_ollama_falls_back_and_the_switch_is_counted() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (base, _) = serve(
        "/v1/chat/completions",
        Reply::Stream {
            body: openai_body(),
            chunk: 1000,
            delay: Duration::ZERO,
        },
    )
    .await;

    let chain = FallbackChain::new(vec![
        Arc::new(resilient(
            OllamaChat::new(&dead, "llama3.2:3b", TIMEOUT).unwrap(),
            TIMEOUT,
            2,
        )),
        Arc::new(resilient(
            OpenAiChat::new(&format!("{base}/v1"), "qwen", None, TIMEOUT).unwrap(),
            TIMEOUT,
            2,
        )),
    ]);
    assert_eq!(chain.name(), "ollama:llama3.2:3b → openai:qwen");
    for round in 1..=2 {
        let events = ok_events(collect(chain.chat(&request()).await.unwrap()).await);
        assert_eq!(events[0], ChatEvent::Text("Got it".into()));
        assert_eq!(chain.fallbacks(), round);
    }

    // Nothing left to fall back to: every engine's failure is in the error.
    let chain = FallbackChain::new(vec![Arc::new(resilient(
        OllamaChat::new(&dead, "a", TIMEOUT).unwrap(),
        TIMEOUT,
        1,
    ))]);
    let error = chain.chat(&request()).await.err().unwrap();
    assert!(
        matches!(&error, LlmError::AllFailed(errors) if errors.len() == 1),
        "{error}"
    );
    assert!(error.to_string().contains("cannot reach"), "{error}");
}
