//! A language model whose requests leave with personal data masked (`MASK_PII_FOR_LLM`): every message
//! of the conversation and every tool-call argument goes through [`mask_pii`] before the engine sees it.
//! The claim still gets the caller's values: the typed parsers read them from the caller's words here,
//! and a masked value a model hands back ("[phone …0134]") fails the field's check.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use switchboard_llm::{ChatModel, ChatRequest, EventStream, LlmError};

use super::mask_pii;

/// `inner`, sent masked text.
pub struct MaskedModel {
    inner: Arc<dyn ChatModel>,
}

impl std::fmt::Debug for MaskedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskedModel")
            .field("inner", &self.inner.name())
            .finish()
    }
}

impl MaskedModel {
    /// Masks what is sent to `inner`.
    pub fn new(inner: Arc<dyn ChatModel>) -> Self {
        Self { inner }
    }
}

fn mask_value(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => {
            if let std::borrow::Cow::Owned(masked) = mask_pii(text) {
                *text = masked;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_value),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(mask_value),
        _ => {}
    }
}

/// `request` with every message and tool-call argument masked.
pub fn masked_request(request: &ChatRequest) -> ChatRequest {
    let mut masked = request.clone();
    for message in &mut masked.messages {
        if let std::borrow::Cow::Owned(text) = mask_pii(&message.content) {
            message.content = text;
        }
        for call in &mut message.tool_calls {
            mask_value(&mut call.arguments);
        }
    }
    masked
}

impl ChatModel for MaskedModel {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<EventStream, LlmError>> {
        Box::pin(async move {
            let masked = masked_request(request);
            self.inner.chat(&masked).await
        })
    }
}

#[cfg(test)]
mod tests {
    use switchboard_llm::{Message, ToolCall};

    use super::*;

    #[test]
    fn every_message_and_tool_argument_is_masked_and_the_rest_kept() {
        let mut assistant = Message::assistant("");
        assistant.tool_calls.push(ToolCall {
            id: "1".into(),
            name: "update_claim".into(),
            arguments: serde_json::json!({"field": "callback_phone", "value": "four one five five five five oh one three four"}),
        });
        let request = ChatRequest {
            messages: vec![
                Message::system("You are Alex."),
                Message::user("my card is 4111 1111 1111 1111 and email ana at example dot com"),
                assistant,
            ],
            max_tokens: Some(64),
            ..ChatRequest::default()
        };
        let masked = masked_request(&request);
        assert_eq!(masked.messages[0].content, "You are Alex.");
        assert_eq!(
            masked.messages[1].content,
            "my card is [card …1111] and email [email]"
        );
        assert_eq!(
            masked.messages[2].tool_calls[0].arguments["value"],
            "[phone …0134]"
        );
        assert_eq!(
            masked.messages[2].tool_calls[0].arguments["field"],
            "callback_phone"
        );
        assert_eq!(masked.max_tokens, Some(64));
    }
}
