//! What an operator configures about the agent in `config.yaml`'s `agent:` section: who it is (persona),
//! what it collects (the claim schema), which intents it tells apart, and phrases in each language.
//!
//! ```yaml
//! agent:
//!   persona: { agent_name: Alex, company: Contoso Insurance, tone: warm and brief, task: "…" }
//!   intents: [report_claim, claim_status, coverage_question, speak_to_human, goodbye, other]
//!   claim_schema:
//!     - { name: caller_name, type: text, description: Full name, required: true }
//!     - { name: plate, type: text, description: Licence plate }
//! ```

use serde::{Deserialize, Serialize};

use crate::claim::ClaimSchema;

/// The agent's identity and job, put into its system prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Persona {
    /// The name it gives itself.
    pub agent_name: String,
    /// Whom it answers for.
    pub company: String,
    /// ISO 639-1 language it starts in.
    pub language: String,
    /// How it sounds.
    pub tone: String,
    /// What the call is for.
    pub task: String,
}

impl Default for Persona {
    fn default() -> Self {
        Self {
            agent_name: "Alex".into(),
            company: "Contoso Insurance".into(),
            language: "en".into(),
            tone: "warm, calm and brief".into(),
            task: "take a first notice of loss: collect the facts of the caller's insurance claim, one \
                   question at a time, then confirm what happens next"
                .into(),
        }
    }
}

/// The `agent:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Who the agent is.
    pub persona: Persona,
    /// What the caller may want, for intent recognition; `speak_to_human` and `goodbye` trigger a
    /// transfer and the end of the call when present.
    pub intents: Vec<String>,
    /// The fields a call collects, in the order the agent asks for them.
    #[serde(with = "schema_fields")]
    pub claim_schema: ClaimSchema,
    /// Caller lines with their intent, shown to the model before it labels a turn (`[text, label]`).
    pub intent_examples: Vec<(String, String)>,
    /// Words that must appear in the caller's line before an intent's action is taken (a transfer, the
    /// end of the call), by intent.
    pub intent_cues: std::collections::BTreeMap<String, Vec<String>>,
    /// Calling code assumed for phone numbers said without one.
    pub country_code: String,
    /// Caller turns kept word for word in the prompt; older ones are folded into a running summary.
    pub memory_turns: usize,
    /// Chunks of the knowledge base given to the model per search.
    pub search_results: usize,
    /// The greeting tells the caller the call is recorded and that they may decline (RECORDING=announce).
    #[serde(skip)]
    pub announce_recording: bool,
    /// The key that, pressed alone, hands the caller to a person (KEYPAD_HANDOVER_KEY).
    #[serde(skip)]
    pub handover_key: Option<char>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            persona: Persona::default(),
            intents: [
                "report_claim",
                "claim_status",
                "coverage_question",
                "speak_to_human",
                "goodbye",
                "other",
            ]
            .map(String::from)
            .to_vec(),
            claim_schema: ClaimSchema::default(),
            intent_examples: [
                ("I need to report an accident.", "report_claim"),
                ("My name is John Smith.", "report_claim"),
                ("It happened last night on Oak Street.", "report_claim"),
                ("No, nobody was hurt.", "report_claim"),
                ("Has my claim been paid yet?", "claim_status"),
                (
                    "Does my policy cover a broken windshield?",
                    "coverage_question",
                ),
                ("Can I talk to a real person, please?", "speak_to_human"),
                ("No, that's all. Thanks, goodbye.", "goodbye"),
                ("No, thank you. Bye.", "goodbye"),
                ("That's everything, goodbye.", "goodbye"),
                ("What's the weather like today?", "other"),
            ]
            .map(|(text, label)| (text.to_owned(), label.to_owned()))
            .to_vec(),
            intent_cues: [
                (
                    "speak_to_human",
                    // Plurals too: "one of your representatives", as a caller says it or a recogniser hears it.
                    &[
                        "person",
                        "people",
                        "human",
                        "humans",
                        "agent",
                        "agents",
                        "representative",
                        "representatives",
                        "operator",
                        "operators",
                        "manager",
                        "colleague",
                        "colleagues",
                    ][..],
                ),
                (
                    "goodbye",
                    &[
                        "bye",
                        "goodbye",
                        "that's all",
                        "that's it",
                        "that's everything",
                        "nothing else",
                    ][..],
                ),
            ]
            .into_iter()
            .map(|(intent, cues)| {
                (
                    intent.to_owned(),
                    cues.iter().map(|c| (*c).to_owned()).collect(),
                )
            })
            .collect(),
            country_code: "1".into(),
            memory_turns: 6,
            search_results: 3,
            announce_recording: false,
            handover_key: None,
        }
    }
}

/// Why the `agent:` section was refused.
#[derive(Debug, thiserror::Error)]
pub enum AgentConfigError {
    /// It does not parse.
    #[error("config.yaml agent section: {0}")]
    Invalid(String),
}

impl AgentConfig {
    /// The agent's configuration for `config`: its `agent:` section, with the persona speaking
    /// TTS_LANGUAGE unless the section names a language.
    pub fn from_config(config: &switchboard_core::Config) -> Result<Self, AgentConfigError> {
        let mut agent = Self::from_yaml(config.agent.as_ref())?;
        let names_language = config
            .agent
            .as_ref()
            .and_then(|a| a.get("persona"))
            .and_then(|p| p.get("language"))
            .is_some();
        if !names_language {
            agent.persona.language = config.tts.language.clone();
        }
        agent.announce_recording =
            config.calls.recording == switchboard_core::config::Recording::Announce;
        agent.handover_key = config.calls.keypad_handover_key;
        Ok(agent)
    }

    /// Reads the `agent:` section (absent = defaults) and checks it.
    pub fn from_yaml(section: Option<&serde_yaml_ng::Value>) -> Result<Self, AgentConfigError> {
        let mut config: AgentConfig = match section {
            None | Some(serde_yaml_ng::Value::Null) => AgentConfig::default(),
            Some(value) => serde_yaml_ng::from_value(value.clone())
                .map_err(|e| AgentConfigError::Invalid(e.to_string()))?,
        };
        // Own intents without own examples: the default examples label other intents.
        let has = |key: &str| section.and_then(|s| s.get(key)).is_some();
        if has("intents") && !has("intent_examples") {
            config.intent_examples.clear();
        }
        if has("intents") && !has("intent_cues") {
            config.intent_cues.clear();
        }
        if config.claim_schema.fields.is_empty() {
            return Err(AgentConfigError::Invalid(
                "claim_schema has no fields".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for field in &config.claim_schema.fields {
            if !names.insert(field.name.as_str()) {
                return Err(AgentConfigError::Invalid(format!(
                    "claim_schema names {} twice",
                    field.name
                )));
            }
        }
        if config.intents.is_empty() {
            return Err(AgentConfigError::Invalid("intents is empty".into()));
        }
        for (text, label) in &config.intent_examples {
            if !config.intents.contains(label) {
                return Err(AgentConfigError::Invalid(format!(
                    "intent_examples labels {text:?} as {label:?}, which is not one of the intents"
                )));
            }
        }
        if !config.country_code.chars().all(|c| c.is_ascii_digit())
            || config.country_code.is_empty()
        {
            return Err(AgentConfigError::Invalid(format!(
                "country_code must be digits (1, 44, 33), not {:?}",
                config.country_code
            )));
        }
        Ok(config)
    }
}

/// The schema is written in YAML as a plain list of fields.
mod schema_fields {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::claim::{ClaimSchema, FieldSpec};

    pub(super) fn serialize<S: Serializer>(schema: &ClaimSchema, s: S) -> Result<S::Ok, S::Error> {
        schema.fields.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ClaimSchema, D::Error> {
        Ok(ClaimSchema {
            fields: Vec::<FieldSpec>::deserialize(d)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claim::FieldKind;

    #[test]
    fn an_absent_section_is_the_defaults() {
        assert_eq!(
            AgentConfig::from_yaml(None).unwrap(),
            AgentConfig::default()
        );
    }

    #[test]
    fn a_replacement_schema_and_persona_are_read() {
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(
            r#"
persona: { agent_name: Maya, company: Acme Home }
claim_schema:
  - { name: plate, type: text, description: Licence plate, required: true }
  - { name: cover, type: enum, values: [basic, full], description: Cover level }
"#,
        )
        .unwrap();
        let config = AgentConfig::from_yaml(Some(&yaml)).unwrap();
        assert_eq!(config.persona.agent_name, "Maya");
        assert_eq!(config.persona.language, "en");
        assert_eq!(config.claim_schema.fields.len(), 2);
        assert_eq!(
            config.claim_schema.fields[1].kind,
            FieldKind::Enum {
                values: vec!["basic".into(), "full".into()]
            }
        );
    }

    #[test]
    fn mistakes_are_refused_with_a_reason() {
        for (yaml, expected) in [
            ("persona: { agent_nam: X }", "agent_nam"),
            ("claim_schema: []", "no fields"),
            (
                "claim_schema: [{name: a, type: text, description: x}, {name: a, type: date, description: y}]",
                "twice",
            ),
            ("country_code: '+1'", "digits"),
            (
                "claim_schema: [{name: a, type: colour, description: x}]",
                "colour",
            ),
        ] {
            let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
            let error = AgentConfig::from_yaml(Some(&value))
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }
}
