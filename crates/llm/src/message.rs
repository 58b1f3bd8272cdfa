//! The engine-neutral conversation: messages, tool definitions, and the events of a streamed answer.

use serde::{Deserialize, Serialize};

/// Who says a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions: persona, task, claim schema.
    System,
    /// The caller.
    User,
    /// The agent.
    Assistant,
    /// The result of a tool call.
    Tool,
}

impl Role {
    /// The role's name in both wire formats.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who says it.
    pub role: Role,
    /// What is said (empty for an assistant turn that only called tools).
    pub content: String,
    /// Tools the assistant called in this turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool result: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For a tool result: the tool's name (Ollama matches results by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
}

impl Message {
    fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            tool_name: None,
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    /// A caller message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    /// An agent message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }

    /// The result of `call`.
    pub fn tool_result(call: &ToolCall, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call.id.clone()),
            tool_name: Some(call.name.clone()),
            ..Self::new(Role::Tool, content)
        }
    }
}

/// A tool the model may call: name, what it does, and its arguments as a JSON Schema object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Name the model calls it by.
    pub name: String,
    /// When to use it, for the model.
    pub description: String,
    /// JSON Schema of the arguments (`{"type": "object", "properties": …, "required": …}`).
    pub parameters: serde_json::Value,
}

/// A tool call the model made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The engine's id for the call, or one we made up when it gives none.
    pub id: String,
    /// Which tool.
    pub name: String,
    /// Its arguments, parsed (leniently: see [`crate::lenient`]).
    pub arguments: serde_json::Value,
}

/// What to ask.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// The conversation so far, system prompt first.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// Sampling temperature; `None` leaves the engine's default.
    pub temperature: Option<f32>,
    /// Longest answer in tokens.
    pub max_tokens: Option<u32>,
    /// When set, the answer must be one JSON value matching this JSON Schema: Ollama's `format`,
    /// OpenAI's `response_format`, a grammar for the embedded engine. Small models need this to extract
    /// fields reliably.
    pub response_schema: Option<serde_json::Value>,
    /// Work no caller is waiting for (a post-call synthesis). An engine that serves one request at a time
    /// (the embedded one) lets the requests of live calls go ahead of it, pausing it between tokens.
    pub background: bool,
}

/// Token counts and why generation stopped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Usage {
    /// Prompt tokens evaluated (not counting a reused cache where the engine says so).
    pub prompt_tokens: Option<u32>,
    /// Tokens generated.
    pub completion_tokens: Option<u32>,
    /// `stop`, `length`, `tool_calls`, …, as the engine says it.
    pub finish_reason: Option<String>,
}

/// One event of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// More text of the answer.
    Text(String),
    /// A complete tool call (arguments fully received and parsed).
    ToolCall(ToolCall),
    /// The answer is complete.
    Done(Usage),
}
