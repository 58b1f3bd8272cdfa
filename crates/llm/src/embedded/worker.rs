//! The worker thread that owns an embedded model and its context: which request runs next, the prompt
//! cache kept per sequence, prompt evaluation and generation, each step on the node's compute gate.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use switchboard_core::compute::{Permit, Priority};
use tokio::sync::mpsc;

use super::{EmbeddedOptions, Job, backend, engine_error};
use crate::grammar::{json_schema_to_gbnf, text_or_tool_call_gbnf};
use crate::lenient::parse_text_tool_call;
use crate::{ChatEvent, ChatRequest, LlmError, Message, Role, ToolCall, Usage};

pub(super) fn worker(
    name: String,
    path: PathBuf,
    options: EmbeddedOptions,
    queue: std_mpsc::Receiver<Job>,
    ready: std_mpsc::Sender<Result<(), String>>,
) {
    let loaded = (|| {
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, &path, &LlamaModelParams::default())
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
        Ok::<_, String>((backend, model))
    })();
    let (backend, model) = match loaded {
        Ok(loaded) => loaded,
        Err(detail) => {
            let _ = ready.send(Err(detail));
            return;
        }
    };
    let threads = i32::from(options.threads.max(1));
    // One context, several sequences sharing its cache (`kv_unified`): each keeps the prefix of a
    // different kind of prompt (a call's answers, its extractions), so they do not evict each other.
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(
            options.context_tokens.saturating_mul(SLOTS),
        ))
        .with_n_seq_max(SLOTS)
        .with_kv_unified(true)
        .with_n_batch(512)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let context = match model.new_context(backend, params) {
        Ok(context) => context,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot create a context: {e}")));
            return;
        }
    };
    // A GGUF without a chat template (a base model) gets the built-in template of its architecture.
    let template = model.chat_template(None).ok().or_else(|| {
        let architecture = model.meta_val_str("general.architecture").unwrap_or_default();
        let fallback = if architecture.starts_with("gemma") { "gemma" } else { "chatml" };
        tracing::warn!(%architecture, fallback, "the GGUF has no chat template; using a built-in one");
        llama_cpp_2::model::LlamaChatTemplate::new(fallback).ok()
    });
    let _ = ready.send(Ok(()));

    let mut session = Session {
        name,
        model: &model,
        context,
        template,
        slots: vec![Slot::default(); SLOTS as usize],
        clock: 0,
        options,
        queue,
        deferred: VecDeque::new(),
        paused: Vec::new(),
    };
    while let Some(job) = session.next_job() {
        session.run(job);
    }
}

struct Session<'m> {
    name: String,
    model: &'m LlamaModel,
    context: LlamaContext<'m>,
    template: Option<llama_cpp_2::model::LlamaChatTemplate>,
    /// What each sequence of the cache holds.
    slots: Vec<Slot>,
    /// Requests served, to find the least recently used slot.
    clock: u64,
    options: EmbeddedOptions,
    /// Requests as they arrive.
    queue: std_mpsc::Receiver<Job>,
    /// Background requests waiting until no live request is queued.
    deferred: VecDeque<Job>,
    /// Slots of background requests paused mid-way, which other requests must leave alone.
    paused: Vec<usize>,
}

/// Sequences (prompt prefixes) the cache keeps at once.
const SLOTS: u32 = 4;

/// One sequence of the KV cache.
#[derive(Debug, Clone, Default)]
struct Slot {
    /// Its tokens, in order.
    tokens: Vec<LlamaToken>,
    /// When it was last used.
    used: u64,
}

/// What generation is constrained to.
enum Mode {
    Free,
    Schema,
    Tools,
}

impl Session<'_> {
    /// Waits for the node's gate before one step of computation; the slot is held until dropped.
    fn compute_slot(&self, background: bool) -> Option<Permit> {
        let priority = if background {
            Priority::Background
        } else {
            Priority::Answer
        };
        self.options
            .gate
            .as_ref()
            .map(|gate| gate.acquire(priority))
    }

    /// The next request to serve: a live one when any is queued (in arrival order), else the oldest
    /// background one; waits for one when there is none. `None` once the engine is dropped.
    fn next_job(&mut self) -> Option<Job> {
        while let Ok(job) = self.queue.try_recv() {
            if !job.request.background {
                return Some(job);
            }
            self.deferred.push_back(job);
        }
        self.deferred.pop_front().or_else(|| self.queue.recv().ok())
    }

    /// Serves the live requests queued now while the background request on `slot` waits; background
    /// ones are put aside for later.
    fn serve_live_requests(&mut self, slot: usize) {
        while let Ok(job) = self.queue.try_recv() {
            if job.request.background {
                self.deferred.push_back(job);
                continue;
            }
            self.paused.push(slot);
            self.run(job);
            self.paused.pop();
        }
    }

    fn run(&mut self, job: Job) {
        let Job {
            request,
            started,
            events,
        } = job;
        let prepared = self.prepare(&request);
        let (prompt, mut samplers, mode) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        };
        let t0 = Instant::now();
        let background = request.background;
        let slot = self.pick_slot(&prompt);
        let reused = match self.evaluate_prompt(slot, &prompt, background) {
            Ok(reused) => reused,
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        };
        tracing::debug!(
            engine = %self.name,
            prompt_tokens = prompt.len(),
            reused,
            prompt_ms = t0.elapsed().as_millis() as u64,
            "prompt evaluated"
        );
        if started.send(Ok(())).is_err() {
            return;
        }
        let max_tokens = request
            .max_tokens
            .unwrap_or(self.options.default_max_tokens);
        let usage_prompt = u32::try_from(prompt.len() - reused).ok();
        let result = self.generate(slot, &mut samplers, max_tokens, &mode, background, &events);
        let event = result.map(|(completion_tokens, finish_reason, held_back)| {
            if let Some(text) = held_back {
                let event = match parse_text_tool_call(&text) {
                    Some((name, arguments)) => ChatEvent::ToolCall(ToolCall {
                        id: format!("call_{}", self.clock),
                        name,
                        arguments,
                    }),
                    None => ChatEvent::Text(text),
                };
                let _ = events.blocking_send(Ok(event));
            }
            ChatEvent::Done(Usage {
                prompt_tokens: usage_prompt,
                completion_tokens: Some(completion_tokens),
                finish_reason: Some(finish_reason.into()),
            })
        });
        let _ = events.blocking_send(event);
    }

    /// The prompt's tokens and the sampler for this request.
    fn prepare(
        &self,
        request: &ChatRequest,
    ) -> Result<(Vec<LlamaToken>, Samplers, Mode), LlmError> {
        let mut messages = request.messages.clone();
        let mode = if let Some(schema) = &request.response_schema {
            let _ = schema;
            Mode::Schema
        } else if request.tools.is_empty() {
            Mode::Free
        } else {
            describe_tools(&mut messages, &request.tools);
            Mode::Tools
        };
        let prompt = self.render(&messages)?;
        let tokens = self.model.vocab().tokenize(prompt.as_bytes(), true, true);
        let room = self.options.context_tokens as usize;
        let max_tokens = request
            .max_tokens
            .unwrap_or(self.options.default_max_tokens) as usize;
        if tokens.is_empty() || tokens.len() + max_tokens > room {
            return Err(engine_error(
                &self.name,
                format!(
                    "the prompt has {} tokens and the answer may take {max_tokens}; the context holds {room}",
                    tokens.len()
                ),
            ));
        }
        let grammar = match (&mode, &request.response_schema) {
            (Mode::Schema, Some(schema)) => Some(json_schema_to_gbnf(schema)?),
            (Mode::Tools, _) => Some(text_or_tool_call_gbnf(&request.tools)?),
            _ => None,
        };
        let grammar = match grammar {
            Some(grammar) => Some(
                LlamaSampler::grammar(self.model, &grammar, "root").map_err(|e| {
                    LlmError::Grammar(format!("llama.cpp refused the grammar: {e}"))
                })?,
            ),
            None => None,
        };
        let mut chain = Vec::new();
        match request.temperature {
            Some(t) if t > 0.0 => {
                chain.push(LlamaSampler::top_k(40));
                chain.push(LlamaSampler::top_p(0.95, 1));
                chain.push(LlamaSampler::temp(t));
                chain.push(LlamaSampler::dist(0x005b_0a2d));
            }
            _ => chain.push(LlamaSampler::greedy()),
        }
        let samplers = Samplers {
            grammar,
            choose: LlamaSampler::chain_simple(chain),
        };
        Ok((tokens, samplers, mode))
    }

    /// The conversation in the model's own chat template (from the GGUF). Tool results go in as user
    /// turns, which every template knows.
    fn render(&self, messages: &[Message]) -> Result<String, LlmError> {
        let template = self
            .template
            .as_ref()
            .ok_or_else(|| engine_error(&self.name, "the GGUF has no chat template".into()))?;
        let mut chat = Vec::with_capacity(messages.len());
        for message in messages {
            let (role, content) = match message.role {
                Role::Tool => (
                    "user",
                    format!(
                        "[result of {}] {}",
                        message.tool_name.as_deref().unwrap_or("tool"),
                        message.content
                    ),
                ),
                Role::Assistant if !message.tool_calls.is_empty() => {
                    let call = &message.tool_calls[0];
                    (
                        "assistant",
                        serde_json::json!({"name": call.name, "arguments": call.arguments})
                            .to_string(),
                    )
                }
                role => (role.as_str(), message.content.clone()),
            };
            chat.push(
                LlamaChatMessage::new(role.to_owned(), content)
                    .map_err(|e| engine_error(&self.name, format!("bad message: {e}")))?,
            );
        }
        self.model
            .apply_chat_template(template, &chat, true)
            .map_err(|e| engine_error(&self.name, format!("chat template: {e}")))
    }

    /// The slot whose cached tokens share the longest prefix with `prompt`; the least recently used one
    /// when none shares anything. Slots of paused background requests are not candidates.
    fn pick_slot(&mut self, prompt: &[LlamaToken]) -> usize {
        self.clock += 1;
        let free = || {
            self.slots
                .iter()
                .enumerate()
                .filter(|(i, _)| !self.paused.contains(i))
        };
        let best = free()
            .map(|(i, slot)| (common_prefix(&slot.tokens, prompt), i))
            .max_by_key(|&(common, i)| (common, std::cmp::Reverse(self.slots[i].used)));
        let slot = match best {
            Some((common, i)) if common > 0 => i,
            _ => free().min_by_key(|(_, s)| s.used).map_or(0, |(i, _)| i),
        };
        self.slots[slot].used = self.clock;
        slot
    }

    /// Brings `slot`'s sequence to `prompt`, evaluating only what differs from what it holds. Returns how
    /// many tokens were reused.
    fn evaluate_prompt(
        &mut self,
        slot: usize,
        prompt: &[LlamaToken],
        background: bool,
    ) -> Result<usize, LlmError> {
        let common = common_prefix(&self.slots[slot].tokens, prompt);
        // The last prompt token is always evaluated again: its logits start the answer.
        let keep = common.min(prompt.len() - 1);
        let seq = slot as u32;
        let keep_u32 = u32::try_from(keep).unwrap_or(u32::MAX);
        if !matches!(
            self.context
                .clear_kv_cache_seq(Some(seq), Some(keep_u32), None),
            Ok(true)
        ) {
            let _ = self.context.clear_kv_cache_seq(Some(seq), None, None);
            return self.evaluate_from(slot, prompt, 0, background).map(|()| 0);
        }
        self.evaluate_from(slot, prompt, keep, background)
            .map(|()| keep)
    }

    fn evaluate_from(
        &mut self,
        slot: usize,
        prompt: &[LlamaToken],
        start: usize,
        background: bool,
    ) -> Result<(), LlmError> {
        self.slots[slot].tokens.truncate(start);
        let seq = slot as i32;
        // Background prompts go in smaller pieces, so that a live request waits less between them.
        let batch_size = if background { 128 } else { 512 };
        let mut batch = LlamaBatch::new(batch_size, 1);
        let last = prompt.len() - 1;
        for (chunk_index, chunk) in prompt[start..].chunks(batch_size).enumerate() {
            if background && chunk_index > 0 {
                self.serve_live_requests(slot);
            }
            batch.clear();
            for (i, token) in chunk.iter().enumerate() {
                let position = start + chunk_index * batch_size + i;
                batch
                    .add(*token, position as i32, &[seq], position == last)
                    .map_err(|e| engine_error(&self.name, format!("batch: {e}")))?;
            }
            let _slot = self.compute_slot(background);
            self.context
                .decode(&mut batch)
                .map_err(|e| engine_error(&self.name, format!("evaluating the prompt: {e}")))?;
            self.slots[slot].tokens.extend_from_slice(chunk);
        }
        Ok(())
    }

    /// Samples up to `max_tokens`, streaming text (or holding it back when it may be a tool call).
    /// Returns the number of tokens, why it stopped, and the held-back text if any.
    fn generate(
        &mut self,
        slot: usize,
        samplers: &mut Samplers,
        max_tokens: u32,
        mode: &Mode,
        background: bool,
        events: &mpsc::Sender<Result<ChatEvent, LlmError>>,
    ) -> Result<(u32, &'static str, Option<String>), LlmError> {
        let vocab = self.model.vocab();
        let mut decoder = Utf8Stream::default();
        let mut batch = LlamaBatch::new(1, 1);
        let mut held: Option<String> = match mode {
            Mode::Schema => Some(String::new()),
            _ => None,
        };
        let mut undecided = matches!(mode, Mode::Tools);
        let mut produced = 0;
        while produced < max_tokens {
            let token = samplers.pick(&self.context);
            if vocab.is_eog(token) {
                return Ok((produced, "stop", held));
            }
            produced += 1;
            let piece = vocab.token_to_piece(token, false, None);
            let text = decoder.push(&piece);
            if !text.is_empty() {
                if undecided {
                    // The first visible character tells a tool call (`{`) from prose.
                    if let Some(first) = text.trim_start().chars().next() {
                        undecided = false;
                        if first == '{' {
                            held = Some(String::new());
                        }
                    }
                }
                match &mut held {
                    Some(buffer) => buffer.push_str(&text),
                    None if !undecided
                        && events.blocking_send(Ok(ChatEvent::Text(text))).is_err() =>
                    {
                        return Ok((produced, "cancelled", None));
                    }
                    None => {}
                }
            }
            if events.is_closed() {
                return Ok((produced, "cancelled", None));
            }
            if background {
                // The logits of this token are used; the next ones come from decoding it below, after
                // whatever live request runs here has used the context.
                self.serve_live_requests(slot);
            }
            batch.clear();
            let position = self.slots[slot].tokens.len() as i32;
            batch
                .add(token, position, &[slot as i32], true)
                .map_err(|e| engine_error(&self.name, format!("batch: {e}")))?;
            let _slot = self.compute_slot(background);
            self.context
                .decode(&mut batch)
                .map_err(|e| engine_error(&self.name, format!("generating: {e}")))?;
            self.slots[slot].tokens.push(token);
        }
        Ok((produced, "length", held))
    }
}

/// How the next token is chosen: a grammar (when the output is constrained) and the sampling proper.
struct Samplers {
    grammar: Option<LlamaSampler>,
    choose: LlamaSampler,
}

impl Samplers {
    /// The next token. Checking a grammar against the whole vocabulary costs far more than the model's
    /// step, so the unconstrained choice is made first and checked alone; only when the grammar rejects
    /// it are all candidates filtered and the choice made again (llama.cpp's own sampler does the same).
    fn pick(&mut self, context: &LlamaContext<'_>) -> LlamaToken {
        let Some(grammar) = &mut self.grammar else {
            return self.choose.sample(context, -1);
        };
        let mut first = context.token_data_array_ith(-1);
        first.apply_sampler(&mut self.choose);
        let mut token = first
            .selected_token()
            .unwrap_or_else(|| greedy_token(&first));
        let mut single =
            LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 1.0, 0.0)], false);
        single.apply_sampler(grammar);
        let allowed = single.data.first().is_some_and(|d| d.logit().is_finite());
        if !allowed {
            // Rare: read the logits again rather than copy the vocabulary-sized array every token.
            let mut constrained = context.token_data_array_ith(-1);
            constrained.apply_sampler(grammar);
            constrained.apply_sampler(&mut self.choose);
            token = constrained
                .selected_token()
                .unwrap_or_else(|| greedy_token(&constrained));
        }
        grammar.accept(token);
        self.choose.accept(token);
        token
    }
}

/// The highest-logit candidate, when a sampler left no selection.
fn greedy_token(candidates: &LlamaTokenDataArray) -> LlamaToken {
    candidates
        .data
        .iter()
        .max_by(|a, b| a.logit().total_cmp(&b.logit()))
        .map_or(LlamaToken::new(0), LlamaTokenData::id)
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Joins token pieces into UTF-8 text, keeping an incomplete multi-byte character until its last byte
/// arrives.
#[derive(Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        match std::str::from_utf8(&self.pending) {
            Ok(text) => {
                let text = text.to_owned();
                self.pending.clear();
                text
            }
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                let text = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
                self.pending.drain(..valid);
                text
            }
            Err(_) => {
                let text = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                text
            }
        }
    }
}

/// Tells a model without a tool API which tools it has and how to call one, in the system prompt.
fn describe_tools(messages: &mut Vec<Message>, tools: &[crate::ToolSpec]) {
    let mut text = String::from(
        "\n\nYou can use these tools. To use one, answer with only a JSON object \
         {\"name\": <tool>, \"arguments\": {...}} and nothing else; otherwise answer in plain words.\n",
    );
    for tool in tools {
        text.push_str(&format!(
            "- {}: {} Arguments: {}\n",
            tool.name, tool.description, tool.parameters
        ));
    }
    match messages.first_mut() {
        Some(first) if first.role == Role::System => first.content.push_str(&text),
        _ => messages.insert(0, Message::system(text.trim_start())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_characters_wait_for_their_last_byte() {
        let mut stream = Utf8Stream::default();
        let euro = "€".as_bytes();
        assert_eq!(stream.push(b"12 "), "12 ");
        assert_eq!(stream.push(&euro[..1]), "");
        assert_eq!(stream.push(&euro[1..]), "€");
        assert_eq!(stream.push(&[0xff, b'a']), "\u{fffd}a");
    }

    #[test]
    fn tools_are_described_in_the_system_prompt() {
        let mut messages = vec![Message::system("You take claims."), Message::user("hi")];
        describe_tools(
            &mut messages,
            &[crate::ToolSpec {
                name: "end_call".into(),
                description: "Hang up.".into(),
                parameters: serde_json::json!({"type": "object"}),
            }],
        );
        assert!(messages[0].content.starts_with("You take claims."));
        assert!(messages[0].content.contains("- end_call: Hang up."));
        assert_eq!(messages.len(), 2);
    }
}
