//! What the HTTP engines share: sending a request with errors mapped to [`LlmError`], and turning a
//! streamed body into [`ChatEvent`]s through an engine's line decoder.

use std::collections::VecDeque;

use futures_util::StreamExt;

use std::time::Duration;

use serde_json::{Value, json};

use crate::sse::Lines;
use crate::{ChatEvent, EventStream, LlmError, ToolSpec};

/// Largest error body kept for the message.
const MAX_ERROR_BODY: usize = 2_048;

/// Decodes an engine's streamed body, line by line.
pub(crate) trait LineDecoder: Send + 'static {
    /// Events completed by `line`.
    fn line(&mut self, line: &str) -> Result<Vec<ChatEvent>, LlmError>;
    /// The body ended: the last events, or an error if the answer was cut short.
    fn end(&mut self) -> Result<Vec<ChatEvent>, LlmError>;
}

/// An HTTP client whose connection attempts give up after `connect_timeout`, so an unreachable host
/// cannot stall a call.
pub(crate) fn client(engine: &str, connect_timeout: Duration) -> Result<reqwest::Client, LlmError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .build()
        .map_err(|e| LlmError::Engine {
            engine: engine.to_owned(),
            detail: format!("cannot build an HTTP client: {e}"),
        })
}

/// Tool definitions as both Ollama and OpenAI take them.
pub(crate) fn wire_tools(tools: &[ToolSpec]) -> Value {
    tools
        .iter()
        .map(|t| {
            json!({"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters,
            }})
        })
        .collect()
}

/// POSTs `body` as JSON; a non-2xx status becomes [`LlmError::Status`] with the server's message.
pub(crate) async fn post(
    client: &reqwest::Client,
    engine: &str,
    url: &str,
    bearer: Option<&str>,
    body: &serde_json::Value,
) -> Result<reqwest::Response, LlmError> {
    let mut request = client.post(url).json(body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| LlmError::Unreachable {
        engine: engine.to_owned(),
        url: url.to_owned(),
        detail: error_chain(&e),
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            let error = v.get("error")?;
            Some(
                error
                    .get("message")
                    .and_then(|m| m.as_str())
                    .or_else(|| error.as_str())?
                    .to_owned(),
            )
        })
        .unwrap_or_else(|| text.chars().take(MAX_ERROR_BODY).collect());
    Err(LlmError::Status {
        engine: engine.to_owned(),
        status: status.as_u16(),
        detail,
    })
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

struct State<D> {
    engine: String,
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    lines: Lines,
    decoder: D,
    pending: VecDeque<Result<ChatEvent, LlmError>>,
    finished: bool,
}

/// The events of `response`'s body.
pub(crate) fn events<D: LineDecoder>(
    engine: &str,
    response: reqwest::Response,
    decoder: D,
) -> EventStream {
    let state = State {
        engine: engine.to_owned(),
        body: response.bytes_stream().boxed(),
        lines: Lines::default(),
        decoder,
        pending: VecDeque::new(),
        finished: false,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            loop {
                if let Some(next) = state.pending.pop_front() {
                    if next.is_err() || matches!(next, Ok(ChatEvent::Done(_))) {
                        // Nothing after the end or an error.
                        state.pending.clear();
                        state.finished = true;
                    }
                    return Some((next, state));
                }
                if state.finished {
                    return None;
                }
                match state.body.next().await {
                    Some(Ok(bytes)) => match state.lines.push(&bytes) {
                        Ok(lines) => {
                            for line in lines {
                                state.decode(|d| d.line(&line));
                            }
                        }
                        Err(detail) => state.fail(detail),
                    },
                    Some(Err(e)) => {
                        let detail = format!("the stream broke: {}", error_chain(&e));
                        state.pending.push_back(Err(LlmError::Unreachable {
                            engine: state.engine.clone(),
                            url: e.url().map(ToString::to_string).unwrap_or_default(),
                            detail,
                        }));
                    }
                    None => {
                        match state.lines.finish() {
                            Ok(Some(line)) => state.decode(|d| d.line(&line)),
                            Ok(None) => {}
                            Err(detail) => state.fail(detail),
                        }
                        state.decode(|d| d.end());
                        state.finished = true;
                    }
                }
            }
        },
    ))
}

impl<D: LineDecoder> State<D> {
    fn decode(&mut self, step: impl FnOnce(&mut D) -> Result<Vec<ChatEvent>, LlmError>) {
        match step(&mut self.decoder) {
            Ok(events) => self.pending.extend(events.into_iter().map(Ok)),
            Err(e) => self.pending.push_back(Err(e)),
        }
    }

    fn fail(&mut self, detail: String) {
        self.pending.push_back(Err(LlmError::Protocol {
            engine: self.engine.clone(),
            detail,
        }));
    }
}
