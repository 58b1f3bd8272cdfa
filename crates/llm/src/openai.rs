//! OpenAI-compatible chat completions: `POST {base}/chat/completions` with `"stream": true`, answered with
//! server-sent events whose data is a `chat.completion.chunk` (or `[DONE]`). Tool calls arrive in pieces:
//! the first delta of a call carries its `index`, `id` and name, later deltas append to its `arguments`
//! string; a call is complete when the choice finishes. vLLM, llama.cpp's server, LM Studio, LocalAI and
//! llama-cpp-python speak this.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use crate::http::{LineDecoder, client, events, post, wire_tools};
use crate::lenient::parse_arguments;
use crate::sse::Events;
use crate::{ChatEvent, ChatModel, ChatRequest, EventStream, LlmError, Message, ToolCall, Usage};

/// A model behind an OpenAI-compatible server.
#[derive(Clone)]
pub struct OpenAiChat {
    client: reqwest::Client,
    url: String,
    model: String,
    api_key: Option<String>,
    name: String,
}

impl std::fmt::Debug for OpenAiChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself: Debug output ends up in logs.
        f.debug_struct("OpenAiChat")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl OpenAiChat {
    /// `model` at `base_url` (up to and including `/v1`, e.g. `http://127.0.0.1:8080/v1`), with an
    /// optional API key sent as a bearer token.
    pub fn new(
        base_url: &str,
        model: &str,
        api_key: Option<String>,
        connect_timeout: Duration,
    ) -> Result<Self, LlmError> {
        let name = format!("openai:{model}");
        let client = client(&name, connect_timeout)?;
        Ok(Self {
            client,
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            model: model.to_owned(),
            api_key,
            name,
        })
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let mut body = json!({
            "model": self.model,
            "messages": request.messages.iter().map(wire_message).collect::<Vec<_>>(),
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if !request.tools.is_empty() {
            body["tools"] = wire_tools(&request.tools);
        }
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(n) = request.max_tokens {
            body["max_tokens"] = json!(n);
        }
        if let Some(schema) = &request.response_schema {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": "answer", "strict": true, "schema": schema},
            });
        }
        body
    }
}

fn wire_message(message: &Message) -> Value {
    let mut out = json!({"role": message.role.as_str(), "content": message.content});
    if !message.tool_calls.is_empty() {
        out["tool_calls"] = message
            .tool_calls
            .iter()
            .map(|c| {
                json!({"id": c.id, "type": "function", "function": {
                    "name": c.name, "arguments": c.arguments.to_string(),
                }})
            })
            .collect();
    }
    if let Some(id) = &message.tool_call_id {
        out["tool_call_id"] = json!(id);
    }
    out
}

impl ChatModel for OpenAiChat {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<EventStream, LlmError>> {
        Box::pin(async move {
            let response = post(
                &self.client,
                &self.name,
                &self.url,
                self.api_key.as_deref(),
                &self.body(request),
            )
            .await?;
            Ok(events(
                &self.name,
                response,
                Decoder {
                    engine: self.name.clone(),
                    sse: Events::default(),
                    calls: BTreeMap::new(),
                    usage: Usage::default(),
                    done: false,
                },
            ))
        })
    }
}

/// A tool call being received.
#[derive(Default)]
struct PartialCall {
    id: Option<String>,
    name: String,
    arguments: String,
}

struct Decoder {
    engine: String,
    sse: Events,
    /// By the call's `index`.
    calls: BTreeMap<u64, PartialCall>,
    usage: Usage,
    done: bool,
}

impl Decoder {
    fn protocol(&self, detail: String) -> LlmError {
        LlmError::Protocol {
            engine: self.engine.clone(),
            detail,
        }
    }

    /// The calls received so far, complete.
    fn flush_calls(&mut self) -> Result<Vec<ChatEvent>, LlmError> {
        let calls = std::mem::take(&mut self.calls);
        calls
            .into_iter()
            .map(|(index, call)| {
                if call.name.is_empty() {
                    return Err(self.protocol(format!("tool call {index} has no name")));
                }
                let arguments = parse_arguments(&call.arguments)
                    .map_err(|e| self.protocol(format!("tool call {}: {e}", call.name)))?;
                Ok(ChatEvent::ToolCall(ToolCall {
                    id: call.id.unwrap_or_else(|| format!("call_{index}")),
                    name: call.name,
                    arguments,
                }))
            })
            .collect()
    }

    fn data(&mut self, data: &str) -> Result<Vec<ChatEvent>, LlmError> {
        if data.trim() == "[DONE]" {
            let mut out = self.flush_calls()?;
            if !self.done {
                self.done = true;
                out.push(ChatEvent::Done(std::mem::take(&mut self.usage)));
            }
            return Ok(out);
        }
        let chunk: Value = serde_json::from_str(data)
            .map_err(|e| self.protocol(format!("an event is not JSON ({e}): {data:.120}")))?;
        if let Some(error) = chunk.get("error") {
            return Err(LlmError::Engine {
                engine: self.engine.clone(),
                detail: error
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| error.to_string(), str::to_owned),
            });
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let count = |key: &str| usage.get(key).and_then(Value::as_u64).map(|n| n as u32);
            self.usage.prompt_tokens = count("prompt_tokens");
            self.usage.completion_tokens = count("completion_tokens");
        }
        let mut out = Vec::new();
        let choices = chunk.get("choices").and_then(Value::as_array);
        // Only the first choice: we never ask for more than one.
        let Some(choice) = choices.and_then(|c| c.first()) else {
            return Ok(out);
        };
        let delta = choice.get("delta");
        if let Some(text) = delta.and_then(|d| d.get("content")).and_then(Value::as_str)
            && !text.is_empty()
        {
            out.push(ChatEvent::Text(text.to_owned()));
        }
        let pieces = delta
            .and_then(|d| d.get("tool_calls"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (position, piece) in pieces.iter().enumerate() {
            let index = piece
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(position as u64);
            let call = self.calls.entry(index).or_default();
            if let Some(id) = piece.get("id").and_then(Value::as_str) {
                call.id = Some(id.to_owned());
            }
            if let Some(function) = piece.get("function") {
                if let Some(name) = function.get("name").and_then(Value::as_str) {
                    call.name.push_str(name);
                }
                if let Some(arguments) = function.get("arguments") {
                    match arguments {
                        Value::String(s) => call.arguments.push_str(s),
                        Value::Null => {}
                        other => call.arguments.push_str(&other.to_string()),
                    }
                }
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.usage.finish_reason = Some(reason.to_owned());
            out.extend(self.flush_calls()?);
        }
        Ok(out)
    }
}

impl LineDecoder for Decoder {
    fn line(&mut self, line: &str) -> Result<Vec<ChatEvent>, LlmError> {
        match self.sse.line(line) {
            Some(data) => self.data(&data),
            None => Ok(Vec::new()),
        }
    }

    fn end(&mut self) -> Result<Vec<ChatEvent>, LlmError> {
        let mut out = match self.sse.finish() {
            Some(data) => self.data(&data)?,
            None => Vec::new(),
        };
        if !self.done {
            // Some servers end the body without `[DONE]` after a finish reason; that is a complete answer.
            if self.usage.finish_reason.is_none() {
                return Err(self.protocol("the stream ended before the answer finished".into()));
            }
            out.extend(self.flush_calls()?);
            self.done = true;
            out.push(ChatEvent::Done(std::mem::take(&mut self.usage)));
        }
        Ok(out)
    }
}
