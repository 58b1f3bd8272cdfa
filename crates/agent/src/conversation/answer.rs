//! A turn's answer when the model writes it: the prompt, the streamed text cut after a sentence or two,
//! and the tool calls of an engine with a tool API, each validated and carried out.

use futures_util::StreamExt;
use switchboard_llm::{ChatEvent, ChatRequest, LlmError, Message, ToolCall};

use super::{Conversation, TurnOutcome};
use crate::claim::FieldContext;
use crate::knowledge::Hit;
use crate::prompt::{Instruction, reply_system_prompt};
use crate::tools::{Action, tool_specs, validate};

/// Tool rounds per turn for engines with a tool API.
const MAX_TOOL_ROUNDS: usize = 3;
/// Answer length in tokens: a spoken answer is a sentence or two.
const REPLY_MAX_TOKENS: u32 = 64;
/// Sentences of a spoken answer; generation stops after them (a small model otherwise rambles on).
const REPLY_MAX_SENTENCES: usize = 2;

/// The least similarity of a passage to a question the model labelled as one for the documents, or
/// searched for with its tool: low, since the label already says the caller asked about the cover.
const LABELLED_QUESTION_SCORE: f32 = 0.2;

/// Sentence ends in `text`: `.`, `!` or `?` followed by a space or the end.
fn sentence_ends(text: &str) -> usize {
    let bytes = text.as_bytes();
    (0..bytes.len())
        .filter(|&i| {
            matches!(bytes[i], b'.' | b'!' | b'?')
                && bytes.get(i + 1).is_none_or(|b| b.is_ascii_whitespace())
                && i > 0
                && bytes[i - 1].is_ascii_alphabetic()
        })
        .count()
}

impl Conversation {
    /// Streams the answer, running any tool calls of an engine with a tool API.
    pub(super) async fn reply(
        &mut self,
        caller_said: &str,
        instruction: &Instruction,
        outcome: &mut TurnOutcome,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String, LlmError> {
        let system = reply_system_prompt(
            &self.config,
            &self.language,
            self.today,
            &self.claim,
            self.memory.summary(),
            &self.context.previous_calls,
            instruction,
        );
        let mut messages = vec![Message::system(system)];
        messages.extend(self.memory.messages());
        messages.push(Message::user(caller_said));
        let tools = if self.native_tools {
            tool_specs(&self.config.claim_schema, self.knowledge.is_some())
        } else {
            Vec::new()
        };
        let mut text = String::new();
        for _ in 0..MAX_TOOL_ROUNDS {
            let request = ChatRequest {
                messages: messages.clone(),
                tools: tools.clone(),
                temperature: None,
                max_tokens: Some(REPLY_MAX_TOKENS),
                response_schema: None,
                background: false,
            };
            let mut stream = self.model.chat(&request).await?;
            let mut calls: Vec<ToolCall> = Vec::new();
            while let Some(event) = stream.next().await {
                match event? {
                    ChatEvent::Text(delta) => {
                        on_text(&delta);
                        text.push_str(&delta);
                        if sentence_ends(&text) >= REPLY_MAX_SENTENCES {
                            // Dropping the stream stops the engine.
                            break;
                        }
                    }
                    ChatEvent::ToolCall(call) => calls.push(call),
                    ChatEvent::Done(_) => break,
                }
            }
            if calls.is_empty() {
                break;
            }
            let mut assistant = Message::assistant(text.clone());
            assistant.tool_calls = calls.clone();
            messages.push(assistant);
            for call in &calls {
                let result = match validate(
                    &call.name,
                    &call.arguments,
                    &self.config.claim_schema,
                    &tools,
                ) {
                    Ok(action) => self.apply(action, outcome),
                    Err(reason) => {
                        outcome.refused.push(reason.clone());
                        reason
                    }
                };
                messages.push(Message::tool_result(call, result));
            }
            if !text.trim().is_empty() {
                break;
            }
        }
        Ok(text.trim().to_owned())
    }

    /// Carries out one validated action and returns what to tell the model about it.
    pub(super) fn apply(&mut self, action: Action, outcome: &mut TurnOutcome) -> String {
        let result = match &action {
            Action::UpdateClaim { field, value } => {
                let context = FieldContext {
                    today: self.today,
                    country_code: self.config.country_code.clone(),
                };
                match self
                    .claim
                    .update(&self.config.claim_schema, field, value, &context)
                {
                    Ok(stored) => {
                        outcome.claim_updates.push((field.clone(), stored.clone()));
                        format!("{field} recorded as {stored}")
                    }
                    Err(error) => {
                        outcome.refused.push(error.to_string());
                        return error.to_string();
                    }
                }
            }
            Action::SearchDocuments { query } => {
                return self.search_with(query, LABELLED_QUESTION_SCORE, outcome);
            }
            Action::TransferToHuman { .. } => "transfer requested".into(),
            Action::EndCall { .. } => "the call will end after your answer".into(),
        };
        self.tool_log.push(action.clone());
        outcome.actions.push(action);
        result
    }

    /// Searches the documents for `query`, keeps the passages scoring at least `min_score` as the
    /// turn's citations, records the search among the turn's actions and returns what to tell the model.
    pub(super) fn search_with(
        &mut self,
        query: &str,
        min_score: f32,
        outcome: &mut TurnOutcome,
    ) -> String {
        let result = self.search(query, min_score, outcome);
        let action = Action::SearchDocuments {
            query: query.to_owned(),
        };
        self.tool_log.push(action.clone());
        outcome.actions.push(action);
        result
    }

    fn search(&self, query: &str, min_score: f32, outcome: &mut TurnOutcome) -> String {
        let Some(knowledge) = &self.knowledge else {
            return "there are no documents to search".into();
        };
        let hits: Vec<Hit> = match knowledge.search(query, self.config.search_results) {
            Ok(hits) => hits,
            Err(error) => {
                tracing::warn!(%error, "document search failed");
                return format!("the search failed: {error}");
            }
        };
        let mut result = String::new();
        for hit in hits.into_iter().filter(|h| h.score >= min_score) {
            result.push_str(&format!(
                "[{}] {}\n",
                hit.passage.document, hit.passage.text
            ));
            outcome.citations.push(hit.passage);
        }
        if result.is_empty() {
            "nothing relevant found".into()
        } else {
            result
        }
    }
}
