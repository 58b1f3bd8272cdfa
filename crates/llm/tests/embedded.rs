//! The embedded engine on the shipped SmolLM2-135M GGUF and the sentence embedder on the shipped
//! all-MiniLM-L6-v2: streaming, prompt-prefix reuse, grammar-constrained answers and tool calls,
//! cancellation, and embeddings that match the reference implementation and rank meaning. Skipped
//! when the models are not fetched, except under CI=true.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use futures_util::StreamExt;
use serde_json::json;
use switchboard_llm::{
    BertEmbedder, ChatEvent, ChatModel, ChatRequest, EmbeddedLlama, EmbeddedOptions, Embedder,
    Message, ToolSpec, Usage, cosine,
};

fn models_dir() -> PathBuf {
    let env = |name: &str| std::env::var(name).ok();
    switchboard_core::Config::from_layers(None, &env)
        .map(|c| c.paths.models_dir)
        .unwrap()
}

fn provisioned(path: PathBuf, name: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "CI=true and {name} is missing"
    );
    eprintln!("SKIPPED: {name} is not provisioned (switchboard models fetch)");
    None
}

fn smollm() -> Option<EmbeddedLlama> {
    let path = provisioned(
        models_dir().join("llm/SmolLM2-135M-Instruct.Q4_1.gguf"),
        "smollm2-135m",
    )?;
    Some(EmbeddedLlama::load(&path, EmbeddedOptions::default()).unwrap())
}

async fn run(engine: &dyn ChatModel, request: &ChatRequest) -> (String, Vec<ChatEvent>, Usage) {
    let mut stream = engine.chat(request).await.unwrap();
    let mut text = String::new();
    let mut events = Vec::new();
    let mut usage = None;
    while let Some(event) = stream.next().await {
        let event = event.unwrap();
        match &event {
            ChatEvent::Text(t) => text.push_str(t),
            ChatEvent::Done(u) => usage = Some(u.clone()),
            ChatEvent::ToolCall(_) => {}
        }
        events.push(event);
    }
    (text, events, usage.expect("the stream ends with Done"))
}

fn conversation(turns: &[&str]) -> ChatRequest {
    let mut messages = vec![Message::system(
        "You are Alex, a phone agent for Contoso Insurance. Answer in one short sentence.",
    )];
    for (i, turn) in turns.iter().enumerate() {
        if i % 2 == 0 {
            messages.push(Message::user(*turn));
        } else {
            messages.push(Message::assistant(*turn));
        }
    }
    ChatRequest {
        messages,
        max_tokens: Some(24),
        ..ChatRequest::default()
    }
}

#[tokio::test]
async fn text_streams_and_the_next_turn_reuses_the_cached_prefix() {
    let Some(engine) = smollm() else { return };
    let first = conversation(&["Hello, I had a car accident yesterday."]);
    let (answer, events, usage) = run(&engine, &first).await;
    println!("answer: {answer:?} {usage:?}");
    assert!(!answer.trim().is_empty());
    assert!(
        events
            .iter()
            .filter(|e| matches!(e, ChatEvent::Text(_)))
            .count()
            > 1,
        "streamed in pieces"
    );
    let cold = usage.prompt_tokens.unwrap();
    assert!(cold > 30, "{cold}");

    // The next turn repeats the whole conversation; only what is new is evaluated.
    let second = conversation(&[
        "Hello, I had a car accident yesterday.",
        &answer,
        "My name is Ana Lopez.",
    ]);
    let (_, _, usage) = run(&engine, &second).await;
    let warm = usage.prompt_tokens.unwrap();
    println!("prompt tokens evaluated: cold {cold}, warm {warm}");
    assert!(warm < cold / 2, "cold {cold}, warm {warm}");
}

#[tokio::test]
async fn a_response_schema_constrains_the_answer_to_valid_json() {
    let Some(engine) = smollm() else { return };
    let request = ChatRequest {
        messages: vec![
            Message::system("Read the caller's words and write JSON."),
            Message::user("Caller: my name is Ana Lopez and nobody was hurt"),
        ],
        max_tokens: Some(60),
        response_schema: Some(json!({
            "type": "object",
            "properties": {
                "intent": {"enum": ["report_claim", "speak_to_human", "other"]},
                "caller_name": {"type": ["string", "null"], "maxLength": 40},
                "injuries": {"type": ["boolean", "null"]},
            },
        })),
        ..ChatRequest::default()
    };
    let (text, _, usage) = run(&engine, &request).await;
    println!("{text} {usage:?}");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        ["report_claim", "speak_to_human", "other"].contains(&value["intent"].as_str().unwrap())
    );
    assert!(value["caller_name"].is_string() || value["caller_name"].is_null());
    assert!(value["injuries"].is_boolean() || value["injuries"].is_null());
}

#[tokio::test]
async fn a_tool_call_comes_out_whole_and_well_formed() {
    let Some(engine) = smollm() else { return };
    let request = ChatRequest {
        messages: vec![
            Message::system("You end calls. When the caller says goodbye, call the end_call tool."),
            Message::user("Thanks, that's all. Goodbye!"),
        ],
        tools: vec![ToolSpec {
            name: "end_call".into(),
            description: "Hang up.".into(),
            parameters: json!({"type": "object", "properties": {"reason": {"type": "string", "maxLength": 40}}, "required": ["reason"]}),
        }],
        max_tokens: Some(40),
        ..ChatRequest::default()
    };
    // Whatever the model chooses, the grammar allows only prose or a complete, valid call.
    let (text, events, _) = run(&engine, &request).await;
    let calls: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::ToolCall(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    println!("text {text:?} calls {calls:?}");
    for call in &calls {
        assert_eq!(call.name, "end_call");
        assert!(call.arguments["reason"].is_string());
    }
    assert!(
        !text.trim_start().starts_with('{'),
        "a call is never leaked as text: {text}"
    );
}

#[tokio::test]
async fn a_dropped_stream_stops_generation_and_the_engine_serves_the_next_request() {
    let Some(engine) = smollm() else { return };
    let mut long = conversation(&["Tell me a long story about insurance."]);
    long.max_tokens = Some(400);
    let mut stream = engine.chat(&long).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(matches!(first, ChatEvent::Text(_)));
    drop(stream);
    let started = std::time::Instant::now();
    let (answer, _, _) = run(&engine, &conversation(&["Hi."])).await;
    assert!(!answer.is_empty());
    println!("next answer after a cancel in {:?}", started.elapsed());
}

#[test]
fn an_oversized_prompt_is_refused_with_the_numbers() {
    let Some(path) = provisioned(
        models_dir().join("llm/SmolLM2-135M-Instruct.Q4_1.gguf"),
        "smollm2-135m",
    ) else {
        return;
    };
    let engine = EmbeddedLlama::load(
        &path,
        EmbeddedOptions {
            context_tokens: 512,
            ..EmbeddedOptions::default()
        },
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let request = conversation(&[&"insurance claim ".repeat(400)]);
    let error = runtime.block_on(engine.chat(&request)).err().unwrap();
    assert!(
        error.to_string().contains("the context holds 512"),
        "{error}"
    );
}

#[test]
fn a_missing_model_file_is_a_clear_error() {
    let error = EmbeddedLlama::load(
        std::path::Path::new("/nonexistent/model.gguf"),
        EmbeddedOptions::default(),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/model.gguf"),
        "{error}"
    );
}

#[test]
fn sentence_embeddings_rank_by_meaning() {
    let Some(embedder) = minilm() else { return };
    assert_eq!(embedder.dimensions(), 384);
    let texts = [
        "Is windshield damage covered by my car insurance?",
        "Glass breakage, including the windscreen, is covered under comprehensive cover.",
        "Our offices are closed on public holidays.",
        "",
    ];
    let vectors = embedder.embed(&texts).unwrap();
    assert_eq!(vectors.len(), 4);
    for v in &vectors[..3] {
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    }
    let related = cosine(&vectors[0], &vectors[1]);
    let unrelated = cosine(&vectors[0], &vectors[2]);
    println!("related {related:.3} unrelated {unrelated:.3}");
    assert!(
        related > unrelated + 0.2,
        "related {related}, unrelated {unrelated}"
    );
    // Batching and padding do not change a text's vector.
    let alone = embedder.embed(&texts[..1]).unwrap();
    assert!(cosine(&alone[0], &vectors[0]) > 0.999);
}

fn minilm() -> Option<BertEmbedder> {
    let dir = provisioned(models_dir().join("all-minilm-l6-v2"), "all-minilm-l6-v2")?;
    Some(BertEmbedder::load(&dir).unwrap())
}

fn fixture(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Our BERT forward pass against vectors recorded from Hugging Face's `BertModel` (as candle ran it),
/// on texts with accents, CJK, emoji, an e-mail, the empty text and one cut at 256 tokens.
#[test]
fn sentence_embeddings_match_the_reference_implementation() {
    let Some(embedder) = minilm() else { return };
    let reference = fixture("minilm_reference.json");
    let cases = reference["texts"].as_array().unwrap();
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    let started = Instant::now();
    let vectors = embedder.embed(&texts).unwrap();
    println!("{} texts in {:?}", texts.len(), started.elapsed());
    for (case, ours) in cases.iter().zip(&vectors) {
        let expected: Vec<f32> = serde_json::from_value(case["vector"].clone()).unwrap();
        let similarity = cosine(ours, &expected);
        let worst = ours
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            similarity > 0.99999 && worst < 1e-3,
            "{:?}: cosine {similarity}, largest difference {worst}",
            case["text"]
        );
    }
}

/// Our WordPiece tokenizer against Hugging Face's tokenizers library on the same `tokenizer.json`.
#[test]
fn word_pieces_match_the_reference_tokenizer() {
    let Some(embedder) = minilm() else { return };
    let reference = fixture("wordpiece_reference.json");
    let cases = reference["texts"].as_array().unwrap();
    assert!(cases.len() > 50);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        assert_eq!(embedder.token_ids(text), expected, "{text:?}");
    }
}

#[tokio::test]
async fn a_live_request_is_served_while_background_work_waits_and_that_work_is_unchanged() {
    let Some(engine) = smollm() else { return };
    let engine = std::sync::Arc::new(engine);
    let background = ChatRequest {
        messages: vec![
            Message::system("You are a counting machine."),
            Message::user("Count from 1 to 300, separated by commas."),
        ],
        max_tokens: Some(240),
        background: true,
        ..ChatRequest::default()
    };
    let (alone, _, alone_usage) = run(engine.as_ref(), &background).await;

    // The same background request again, read by a task that notes when each piece arrives; a live
    // request is sent once the first piece is there.
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let reader = {
        let engine = engine.clone();
        let request = background.clone();
        tokio::spawn(async move {
            let mut stream = engine.chat(&request).await.unwrap();
            let mut first = Some(first_tx);
            let mut pieces = Vec::new();
            let mut usage = None;
            while let Some(event) = stream.next().await {
                match event.unwrap() {
                    ChatEvent::Text(t) => {
                        pieces.push((Instant::now(), t));
                        if let Some(tx) = first.take() {
                            let _ = tx.send(());
                        }
                    }
                    ChatEvent::Done(u) => usage = Some((Instant::now(), u)),
                    ChatEvent::ToolCall(_) => {}
                }
            }
            (pieces, usage.unwrap())
        })
    };
    first_rx.await.unwrap();
    let (answer, _, _) = run(
        engine.as_ref(),
        &conversation(&["Hello, I had an accident."]),
    )
    .await;
    let live_done = Instant::now();
    assert!(!answer.is_empty());
    let (pieces, (background_done, usage)) = reader.await.unwrap();
    let after_live = pieces.iter().filter(|(at, _)| *at > live_done).count();
    println!(
        "{} pieces, {after_live} after the live answer",
        pieces.len()
    );
    assert!(
        background_done > live_done && after_live > 0,
        "the live request did not wait for the background one: {after_live} pieces came after it"
    );
    assert_eq!(usage.completion_tokens, alone_usage.completion_tokens);
    // Its cache sequence was left alone while the live request ran: the same greedy answer.
    let interleaved: String = pieces.into_iter().map(|(_, t)| t).collect();
    assert_eq!(interleaved, alone);
}
