//! What the agent says in fixed words: each field's question in its forms, the acknowledgement of what
//! a turn captured (identifiers read back), the answer of a turn for a model too small to phrase it, and
//! every such sentence listed for the voice's cache.

use serde_json::Value;

use crate::claim::{ClaimSchema, EntityKind, FieldKind, FieldSpec};
use crate::config::AgentConfig;
use crate::facts::spoken;
use crate::prompt::{AskTurn, Instruction};

/// The question for `field` at `turn`, in fixed words.
pub(crate) fn question(field: &FieldSpec, turn: AskTurn) -> String {
    let first = field.question.clone().unwrap_or_else(|| {
        format!(
            "Could you tell me the {}?",
            field.description.to_lowercase()
        )
    });
    match turn {
        AskTurn::First => first,
        AskTurn::Again | AskTurn::More => field.rephrase.clone().unwrap_or(first),
        AskTurn::BeforeGoodbye => format!("Before you go, {}", lower_first(&first)),
    }
}

/// The field an answer the agent gave in fixed words asked for, read from its words: the last of the
/// schema's questions (in any of its forms) that the answer holds.
pub fn asked_field(config: &AgentConfig, agent_said: &str) -> Option<String> {
    let mut found: Option<(usize, String)> = None;
    for field in &config.claim_schema.fields {
        for turn in [AskTurn::First, AskTurn::Again, AskTurn::BeforeGoodbye] {
            let question = question(field, turn);
            if let Some(at) = agent_said.rfind(&question)
                && found.as_ref().is_none_or(|(best, _)| at > *best)
            {
                found = Some((at, field.name.clone()));
            }
        }
    }
    found.map(|(_, field)| field)
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// How the agent names a field when it reads its value back.
fn label(field: &FieldSpec) -> String {
    match field.entity_kind() {
        Some(EntityKind::PolicyNumber) => "your policy number".into(),
        Some(EntityKind::Phone) => "your number".into(),
        Some(EntityKind::Email) => "your e-mail".into(),
        _ => field.description.to_lowercase(),
    }
}

/// Whether a field's value is read back for confirmation: identifiers and numbers.
pub(crate) fn read_back(field: &FieldSpec) -> bool {
    matches!(
        field.entity_kind(),
        Some(EntityKind::PolicyNumber | EntityKind::Phone | EntityKind::Email)
    )
}

/// Said back when the caller reports an injury.
const HURT: &str = "I'm sorry someone was hurt; I've noted it.";

/// The acknowledgement of what a turn captured, in schema order: a first sentence from fixed words
/// (so the voice has it ready), then the facts said back, identifiers read out for confirmation.
/// Returns the text and the field read back last (a "no" next turn corrects it).
pub(crate) fn acknowledgement(
    schema: &ClaimSchema,
    captured: &[(String, Value)],
) -> (String, Option<String>) {
    let fields: Vec<(&FieldSpec, &Value)> = schema
        .fields
        .iter()
        .filter_map(|f| {
            captured
                .iter()
                .find(|(n, _)| n == &f.name)
                .map(|(_, v)| (f, v))
        })
        .collect();
    if fields.is_empty() {
        return (String::new(), None);
    }
    let mut opener = "Got it.".to_owned();
    let mut facts: Vec<String> = Vec::new();
    let mut sentences: Vec<String> = Vec::new();
    let mut read = None;
    for (field, value) in &fields {
        match (field.entity_kind(), &field.kind) {
            (Some(EntityKind::PersonName), _) => {
                let first = value
                    .as_str()
                    .and_then(|n| n.split(' ').next())
                    .unwrap_or("");
                opener = format!("Thank you, {first}.");
            }
            (Some(EntityKind::Description), _) => opener = "I'm sorry to hear that.".into(),
            (_, FieldKind::Bool) if !field.topic.is_empty() => {
                sentences.push(if value == &&Value::Bool(true) {
                    HURT.into()
                } else {
                    "I'm glad nobody was hurt.".into()
                })
            }
            (_, FieldKind::Bool) => facts.push(format!(
                "{}: {}",
                field.description.to_lowercase(),
                if value == &&Value::Bool(true) {
                    "yes"
                } else {
                    "no"
                }
            )),
            _ if read_back(field) => {
                sentences.push(format!(
                    "I have {} as {}.",
                    label(field),
                    spoken(field, value)
                ));
                read = Some(field.name.clone());
            }
            _ => facts.push(spoken(field, value)),
        }
    }
    // One word of sympathy: not "I'm sorry to hear that." before it as well.
    if opener.starts_with("I'm sorry") && sentences.iter().any(|s| s == HURT) {
        opener = "Got it.".into();
    }
    let mut text = opener;
    if !facts.is_empty() {
        text.push(' ');
        let mut line = facts.join(", ");
        if let Some(first) = line.get(..1) {
            line = format!("{}{}", first.to_uppercase(), &line[1..]);
        }
        text.push_str(&line);
        text.push('.');
    }
    for sentence in sentences {
        text.push(' ');
        text.push_str(&sentence);
    }
    (text, read)
}

/// The answer of a turn in fixed words, for models too small to follow instructions reliably (the
/// embedded default): the acknowledgement, then the question, the transfer notice, the goodbye or the
/// wrap-up; a passage of the documents as it says it. Other answers from documents are generated.
/// `None` means generate.
pub(crate) fn guided_reply(
    config: &AgentConfig,
    instruction: &Instruction,
    acknowledgement: &str,
    generative: bool,
) -> Option<String> {
    if generative {
        return None;
    }
    let body = match instruction {
        Instruction::Ask { field, turn, .. } => {
            let spec = config.claim_schema.fields.iter().find(|f| &f.name == field)?;
            let question = question(spec, *turn);
            if acknowledgement.is_empty() && *turn == AskTurn::First {
                format!("Thank you. {question}")
            } else {
                question
            }
        }
        Instruction::Transfer => "Of course. I'm transferring you to a colleague now, please hold.".into(),
        Instruction::Goodbye => format!("Thank you for calling {}. Goodbye!", config.persona.company),
        Instruction::Wrap => "Thank you, I have everything I need. Your claim is recorded and a claims \
                              handler will call you back within one business day. Is there anything else?"
            .into(),
        Instruction::Quote { quote, then } => match then.as_deref() {
            Some(Instruction::Ask { field, turn, .. }) => {
                let spec = config.claim_schema.fields.iter().find(|f| &f.name == field)?;
                format!("{} {}", quote.text, question(spec, *turn))
            }
            _ => quote.text.clone(),
        },
        Instruction::Answer { .. } => return None,
    };
    Some(if acknowledgement.is_empty() {
        body
    } else {
        format!("{acknowledgement} {body}")
    })
}

/// Every sentence the agent may say from fixed words, so a voice can have them synthesised before the
/// first call: each field's question in each of its forms, the openers of acknowledgements, the
/// transfer, goodbye and wrap-up. Empty when answers are generated.
pub fn fixed_replies(config: &AgentConfig, native_tools: bool) -> Vec<String> {
    if native_tools {
        return Vec::new();
    }
    let mut replies = Vec::new();
    for field in &config.claim_schema.fields {
        for turn in [AskTurn::First, AskTurn::Again, AskTurn::BeforeGoodbye] {
            let instruction = Instruction::Ask {
                field: field.name.clone(),
                description: field.description.clone(),
                turn,
            };
            replies.extend(guided_reply(config, &instruction, "", false));
        }
    }
    for instruction in [
        Instruction::Transfer,
        Instruction::Goodbye,
        Instruction::Wrap,
    ] {
        replies.extend(guided_reply(config, &instruction, "", false));
    }
    replies.extend(
        [
            "Got it.",
            "I'm sorry to hear that.",
            "I'm glad nobody was hurt.",
        ]
        .map(String::from),
    );
    replies
}
