//! A call's conversation on the shipped embedded model: the claim fills from what the caller says, the
//! agent asks for what is missing, a copy answers a turn as a draft without touching the call, and with
//! the configured server unreachable the call still gets answers from the embedded fallback, the switch
//! logged and counted. Skipped when the model is not fetched, except under CI=true.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use switchboard_agent::{AgentConfig, CallContext, Conversation};
use switchboard_core::Config;

fn config(env: &[(&str, &str)]) -> Config {
    let lookup = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
            .or_else(|| std::env::var(name).ok())
    };
    Config::from_layers(None, &lookup).unwrap()
}

fn model_present(config: &Config) -> bool {
    if switchboard_llm::embedded_model_path(config).is_file() {
        return true;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "CI=true and the embedded model is missing"
    );
    eprintln!("SKIPPED: the embedded model is not provisioned (switchboard models fetch)");
    false
}

fn context() -> CallContext {
    CallContext {
        today: chrono::NaiveDate::from_ymd_opt(2026, 11, 25),
        ..CallContext::default()
    }
}

#[tokio::test]
async fn the_claim_fills_from_the_callers_words_and_the_agent_asks_for_the_rest() {
    let config = config(&[]);
    if !model_present(&config) {
        return;
    }
    let model = switchboard_llm::chat_model(&config).unwrap();
    let mut conversation = Conversation::new(model, None, AgentConfig::default(), context(), false);
    let greeting = conversation.greeting();
    assert!(greeting.contains("Contoso Insurance"), "{greeting}");

    let mut streamed = String::new();
    let outcome = conversation
        .respond(
            "Hi, this is Ana Lopez, policy AB-48213. Someone hit my car yesterday, you can call me on 415 555 0134.",
            &mut |delta| streamed.push_str(delta),
        )
        .await;
    println!("{outcome:#?}");
    assert_eq!(outcome.llm_error, None);
    assert_eq!(
        streamed.trim(),
        outcome.reply,
        "what was streamed is the reply"
    );
    let claim = conversation.claim();
    assert_eq!(claim.values["policy_number"], json!("AB48213"));
    assert_eq!(claim.values["incident_date"], json!("2026-11-24"));
    assert_eq!(claim.values["callback_phone"], json!("+14155550134"));
    assert!(!outcome.reply.is_empty());
}

/// A copy of the conversation is a draft the session answers a turn with while the end of the turn is
/// still being confirmed: what the draft's turn changes stays in the draft, so when the caller goes on the
/// conversation answers the whole turn as if the draft never was.
#[tokio::test]
async fn a_draft_answers_a_turn_without_touching_the_conversation() {
    let config = config(&[]);
    if !model_present(&config) {
        return;
    }
    let model = switchboard_llm::chat_model(&config).unwrap();
    let mut conversation = Conversation::new(model, None, AgentConfig::default(), context(), false);
    conversation.greeting();

    // The caller paused after the policy number: the draft answers those words.
    let mut draft = conversation.clone();
    let outcome = draft
        .respond("My policy number is AB-48213.", &mut |_| {})
        .await;
    assert!(!outcome.reply.is_empty());
    assert_eq!(draft.claim().values["policy_number"], json!("AB48213"));
    assert_eq!(draft.turns(), 1);

    // They went on: the draft is dropped, and the conversation has not moved.
    drop(draft);
    assert!(
        conversation.claim().values.is_empty(),
        "{:?}",
        conversation.claim()
    );
    assert_eq!(conversation.turns(), 0);
    assert!(conversation.actions().is_empty());
    conversation
        .respond(
            "My policy number is AB-48213, and you can call me on 415 555 0134.",
            &mut |_| {},
        )
        .await;
    let claim = &conversation.claim().values;
    assert_eq!(claim["policy_number"], json!("AB48213"));
    assert_eq!(claim["callback_phone"], json!("+14155550134"), "{claim:?}");
    assert_eq!(conversation.turns(), 1);
}

/// Captures log lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn with_ollama_unreachable_the_call_is_answered_by_the_embedded_fallback() {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    let config = config(&[
        ("LLM_PROVIDER", "ollama"),
        ("OLLAMA_HOST", "http://127.0.0.1:9"),
        ("LLM_FALLBACK", "embedded"),
    ]);
    if !model_present(&config) {
        return;
    }
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let model = switchboard_llm::chat_model(&config).unwrap();
    assert!(model.name().starts_with("ollama:"), "{}", model.name());
    let before = switchboard_llm::total_fallbacks();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut conversation = Conversation::new(model, None, AgentConfig::default(), context(), true);
    conversation.greeting();
    let outcome = runtime.block_on(conversation.respond("My name is Ana Lopez.", &mut |_| {}));
    println!("{outcome:#?}");
    assert_eq!(outcome.llm_error, None, "the fallback answered");
    assert!(!outcome.reply.is_empty());
    assert!(
        !outcome.reply.starts_with("I'm sorry, I didn't catch that"),
        "{}",
        outcome.reply
    );
    assert!(
        switchboard_llm::total_fallbacks() > before,
        "the reply fell back (no intent label is asked for: nothing in the line could act on one)"
    );
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("falling back"), "{logged}");
    assert!(
        logged.contains("127.0.0.1:9"),
        "the log names what failed: {logged}"
    );
}
