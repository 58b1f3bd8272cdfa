//! The wording of the fixed phrases a call may need at any moment, so they can be synthesised ahead of
//! time and played without waiting for the voice.

use switchboard_agent::{AgentConfig, fixed_replies, greeting_text};
use switchboard_speech::tts::pieces;

use crate::machine::Phrase;

/// The fixed phrases of one persona.
#[derive(Debug, Clone)]
pub struct PhraseBook {
    greeting: String,
    reprompt: String,
    filler: String,
    apology: String,
    silence_goodbye: String,
    limit_goodbye: String,
    machine_message: String,
    /// The agent's fixed answers (the schema's questions, transfer, goodbye), sentence by sentence.
    fixed_sentences: Vec<String>,
}

impl PhraseBook {
    /// Phrases in the persona's words.
    pub fn new(agent: &AgentConfig, native_tools: bool) -> Self {
        let persona = &agent.persona;
        let mut fixed_sentences: Vec<String> = fixed_replies(agent, native_tools)
            .iter()
            .flat_map(|reply| pieces(reply))
            .collect();
        fixed_sentences.sort();
        fixed_sentences.dedup();
        Self {
            fixed_sentences,
            greeting: greeting_text(agent),
            reprompt: "Are you still there?".into(),
            filler: "One moment please.".into(),
            apology: "I'm sorry, that took too long on my side. Could you say that again?".into(),
            silence_goodbye: format!(
                "I can't hear you, so I'll end the call now. Please call {} again anytime. Goodbye.",
                persona.company
            ),
            limit_goodbye:
                "We've covered a lot, so I'll wrap up here. A colleague will follow up with \
                            you. Thank you, goodbye."
                    .into(),
            machine_message: format!(
                "Hello, this is {} from {}. Please call us back when it suits you. Thank you, goodbye.",
                persona.agent_name, persona.company
            ),
        }
    }

    /// What the agent leaves on an answering machine (AMD_MESSAGE), instead of the persona's default.
    pub fn with_machine_message(mut self, message: Option<&str>) -> Self {
        if let Some(message) = message {
            self.machine_message = message.trim().to_owned();
        }
        self
    }

    /// The words of `phrase`.
    pub fn text(&self, phrase: Phrase) -> &str {
        match phrase {
            Phrase::Greeting => &self.greeting,
            Phrase::Reprompt => &self.reprompt,
            Phrase::Filler => &self.filler,
            Phrase::Apology => &self.apology,
            Phrase::SilenceGoodbye => &self.silence_goodbye,
            Phrase::LimitGoodbye => &self.limit_goodbye,
            Phrase::MachineMessage => &self.machine_message,
        }
    }

    /// Every phrase and fixed sentence, for warming the cache.
    pub fn all(&self) -> Vec<&str> {
        let mut all: Vec<&str> = [
            Phrase::Greeting,
            Phrase::Reprompt,
            Phrase::Filler,
            Phrase::Apology,
            Phrase::SilenceGoodbye,
            Phrase::LimitGoodbye,
            Phrase::MachineMessage,
        ]
        .into_iter()
        .map(|p| self.text(p))
        .collect();
        all.extend(self.fixed_sentences.iter().map(String::as_str));
        all
    }
}
