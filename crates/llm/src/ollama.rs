//! Ollama's native chat API: `POST /api/chat` with `"stream": true`, answered with one JSON object per
//! line. Text arrives in `message.content`; tool calls arrive whole in `message.tool_calls` with their
//! arguments as a JSON object; the last line has `"done": true` and the token counts.

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use crate::http::{LineDecoder, client, events, post, wire_tools};
use crate::lenient::parse_arguments;
use crate::{ChatEvent, ChatModel, ChatRequest, EventStream, LlmError, Message, ToolCall, Usage};

/// A model served by Ollama.
#[derive(Debug, Clone)]
pub struct OllamaChat {
    client: reqwest::Client,
    url: String,
    model: String,
    name: String,
}

impl OllamaChat {
    /// `model` (an Ollama tag such as `llama3.2:3b`) on the server at `host` (`http://localhost:11434`).
    /// `connect_timeout` bounds how long an unreachable host can stall a call.
    pub fn new(host: &str, model: &str, connect_timeout: Duration) -> Result<Self, LlmError> {
        let name = format!("ollama:{model}");
        let client = client(&name, connect_timeout)?;
        Ok(Self {
            client,
            url: format!("{}/api/chat", host.trim_end_matches('/')),
            model: model.to_owned(),
            name,
        })
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let messages: Vec<Value> = request.messages.iter().map(wire_message).collect();
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
        });
        if !request.tools.is_empty() {
            body["tools"] = wire_tools(&request.tools);
        }
        if let Some(schema) = &request.response_schema {
            body["format"] = schema.clone();
        }
        let mut options = serde_json::Map::new();
        if let Some(t) = request.temperature {
            options.insert("temperature".into(), json!(t));
        }
        if let Some(n) = request.max_tokens {
            options.insert("num_predict".into(), json!(n));
        }
        if !options.is_empty() {
            body["options"] = Value::Object(options);
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
            .map(|c| json!({"function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
    }
    if let Some(name) = &message.tool_name {
        out["tool_name"] = json!(name);
    }
    out
}

impl ChatModel for OllamaChat {
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
                None,
                &self.body(request),
            )
            .await?;
            Ok(events(
                &self.name,
                response,
                Decoder {
                    engine: self.name.clone(),
                    calls: 0,
                    done: false,
                },
            ))
        })
    }
}

struct Decoder {
    engine: String,
    calls: usize,
    done: bool,
}

impl Decoder {
    fn protocol(&self, detail: String) -> LlmError {
        LlmError::Protocol {
            engine: self.engine.clone(),
            detail,
        }
    }
}

impl LineDecoder for Decoder {
    fn line(&mut self, line: &str) -> Result<Vec<ChatEvent>, LlmError> {
        if line.trim().is_empty() {
            return Ok(Vec::new());
        }
        let chunk: Value = serde_json::from_str(line)
            .map_err(|e| self.protocol(format!("a line is not JSON ({e}): {line:.120}")))?;
        if let Some(error) = chunk.get("error") {
            return Err(LlmError::Engine {
                engine: self.engine.clone(),
                detail: error
                    .as_str()
                    .map_or_else(|| error.to_string(), str::to_owned),
            });
        }
        let mut out = Vec::new();
        let message = chunk.get("message");
        if let Some(text) = message
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            && !text.is_empty()
        {
            out.push(ChatEvent::Text(text.to_owned()));
        }
        let calls = message
            .and_then(|m| m.get("tool_calls"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for call in calls {
            let function = call
                .get("function")
                .ok_or_else(|| self.protocol("a tool call without `function`".into()))?;
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| self.protocol("a tool call without a name".into()))?;
            let arguments = match function.get("arguments") {
                Some(Value::String(raw)) => parse_arguments(raw).map_err(|e| self.protocol(e))?,
                Some(v @ Value::Object(_)) => v.clone(),
                None | Some(Value::Null) => json!({}),
                Some(other) => return Err(self.protocol(format!("tool arguments are {other}"))),
            };
            self.calls += 1;
            out.push(ChatEvent::ToolCall(ToolCall {
                id: call
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("call_{}", self.calls), str::to_owned),
                name: name.to_owned(),
                arguments,
            }));
        }
        if chunk.get("done").and_then(Value::as_bool) == Some(true) {
            self.done = true;
            let count = |key: &str| chunk.get(key).and_then(Value::as_u64).map(|n| n as u32);
            out.push(ChatEvent::Done(Usage {
                prompt_tokens: count("prompt_eval_count"),
                completion_tokens: count("eval_count"),
                finish_reason: chunk
                    .get("done_reason")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            }));
        }
        Ok(out)
    }

    fn end(&mut self) -> Result<Vec<ChatEvent>, LlmError> {
        if self.done {
            Ok(Vec::new())
        } else {
            Err(self.protocol("the stream ended before `done`".into()))
        }
    }
}
