//! Scores a scripted call that was played as speech through a real call (`switchboard agent-test
//! --audio`): the stored claim against the scenario's expectations, the questions asked again after
//! their answer had been given, the "that took too long" apologies, and the caller's lines that were cut
//! (answered after half a sentence: the agent was heard between two parts of the line). The scenario's relative dates are re-read for the
//! day the call really took place.

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::claim::{FieldContext, FieldKind};
use crate::config::AgentConfig;
use crate::dialogue::asked_field;
use crate::scenario::{FieldResult, Scenario, given_by, matches};

/// How one spoken scenario came out.
#[derive(Debug, Clone, Serialize)]
pub struct CallScore {
    /// Scenario name.
    pub name: String,
    /// Per expected field.
    pub fields: Vec<FieldResult>,
    /// Questions asked again after their answer: `(line, field)`, lines from 1.
    pub reasked: Vec<(usize, String)>,
    /// The agent's apologies for an answer that took too long.
    pub apologies: usize,
    /// Scripted lines (from 1) answered after part of them: heard as more than one caller utterance
    /// with the agent heard between two of them. (A line heard in two parts with nothing said between
    /// is one turn to the agent, which answers the parts together.)
    pub cut_lines: Vec<usize>,
    /// Whether the call ended the way the scenario expects (goodbye, transfer), when it says.
    pub ended_as_expected: Option<bool>,
}

impl CallScore {
    /// Expected fields filled correctly.
    pub fn correct(&self) -> usize {
        self.fields.iter().filter(|f| f.correct).count()
    }
}

/// Lower-case words.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The share of `turn`'s words found in `line`.
fn overlap(turn: &[String], line: &[String]) -> f64 {
    if turn.is_empty() {
        return 0.0;
    }
    turn.iter().filter(|w| line.contains(w)).count() as f64 / turn.len() as f64
}

/// The scripted line each caller turn was heard from: in order, each turn going to the line among the
/// next few whose words it shares most (a recogniser changes some words, never the order of lines).
fn align(lines: &[String], caller_turns: &[&str]) -> Vec<usize> {
    let lines: Vec<Vec<String>> = lines.iter().map(|l| words(l)).collect();
    let mut at = 0usize;
    let mut out = Vec::new();
    for (k, turn) in caller_turns.iter().enumerate() {
        let turn = words(turn);
        let ahead = (at..lines.len().min(at + 3)).filter(|&i| k == 0 || i >= at);
        let best = ahead.map(|i| (i, overlap(&turn, &lines[i]))).fold(
            None::<(usize, f64)>,
            |best, (i, score)| match best {
                Some((_, b)) if b >= score => best,
                _ => Some((i, score)),
            },
        );
        // A turn that shares no word with the lines ahead ("+12065550142" for "plus one two zero…") is
        // the next line, not more of the last one.
        let line = match best {
            Some((i, score)) if score > 0.0 => i,
            _ if k == 0 => 0,
            _ => (at + 1).min(lines.len().saturating_sub(1)),
        };
        out.push(line);
        at = line;
        // The next turn is most likely the next line; this one may still go on.
    }
    out
}

impl Scenario {
    /// The scenario as if called on `today`: its expected dates re-read from the caller's lines that
    /// say them ("yesterday" is the day before `today`); absolute dates stay as they are.
    pub fn on(&self, today: NaiveDate, config: &AgentConfig) -> Scenario {
        let mut moved = self.clone();
        let then = FieldContext {
            today: self.today,
            country_code: config.country_code.clone(),
        };
        for (field, expected) in moved.expect.claim.iter_mut() {
            let Some(spec) = config.claim_schema.fields.iter().find(|f| &f.name == field) else {
                continue;
            };
            if spec.kind != FieldKind::Date {
                continue;
            }
            // The last line that says it: a correction comes after what it corrects.
            let line = self.caller.iter().rev().find(|line| {
                crate::claim::normalize(spec, &Value::String((*line).clone()), &then)
                    .is_ok_and(|got| matches(spec, expected, &got, &then))
            });
            if let Some(line) = line
                && let Some(date) =
                    crate::entities::parse_date(crate::facts::after_correction(line), today)
            {
                *expected = Value::String(date.format("%Y-%m-%d").to_string());
            }
        }
        moved.today = today;
        moved
    }
}

/// Scores one call of `scenario` (already moved to the call's day, see [`Scenario::on`]) from its stored
/// claim, its transcript (`(speaker, text)`, speakers "caller" and "agent") and its end reason.
pub fn score_call(
    config: &AgentConfig,
    scenario: &Scenario,
    claim: &Map<String, Value>,
    transcript: &[(String, String)],
    end_reason: Option<&str>,
    apology: &str,
) -> CallScore {
    let context = FieldContext {
        today: scenario.today,
        country_code: config.country_code.clone(),
    };
    let fields = scenario
        .expect
        .claim
        .iter()
        .map(|(field, expected)| {
            let got = claim.get(field).cloned().unwrap_or(Value::Null);
            let spec = config.claim_schema.fields.iter().find(|f| &f.name == field);
            FieldResult {
                field: field.clone(),
                expected: expected.clone(),
                correct: spec.is_some_and(|spec| matches(spec, expected, &got, &context)),
                got,
            }
        })
        .collect();
    let caller_turns: Vec<&str> = transcript
        .iter()
        .filter(|(s, _)| s == "caller")
        .map(|(_, t)| t.as_str())
        .collect();
    // Whether the agent was heard just before each caller utterance.
    let answered_before: Vec<bool> = transcript
        .iter()
        .scan(false, |agent_heard, (speaker, _)| {
            if speaker == "caller" {
                Some(Some(std::mem::take(agent_heard)))
            } else {
                *agent_heard = true;
                Some(None)
            }
        })
        .flatten()
        .collect();
    let lines_of = align(&scenario.caller, &caller_turns);
    let mut cut_lines: Vec<usize> = lines_of
        .windows(2)
        .zip(answered_before.iter().skip(1))
        .filter(|(w, answered)| w[0] == w[1] && **answered)
        .map(|(w, _)| w[0] + 1)
        .collect();
    cut_lines.dedup();
    // Each answer, after the caller turn it answers and so after the line that turn was heard from;
    // the question asked just before each line.
    let mut turn = 0usize;
    let mut apologies = 0;
    let mut asks: Vec<(usize, String)> = Vec::new();
    let mut asked_before_line: Vec<Option<String>> = vec![None; scenario.caller.len()];
    for (speaker, text) in transcript {
        if speaker == "caller" {
            turn += 1;
            continue;
        }
        if text.contains(apology) {
            apologies += 1;
        }
        let asked = asked_field(config, text);
        let next_line = turn.checked_sub(1).map_or(0, |k| lines_of[k] + 1);
        if let Some(slot) = asked_before_line.get_mut(next_line) {
            *slot = asked.clone();
        }
        if let (Some(k), Some(field)) = (turn.checked_sub(1), asked) {
            asks.push((lines_of[k], field));
        }
    }
    let reasked = asks
        .into_iter()
        .filter(|(line, field)| {
            given_by(config, scenario, field, *line, &context, |j| {
                asked_before_line.get(j).and_then(|a| a.as_deref())
            })
        })
        .map(|(line, field)| (line + 1, field))
        .collect();
    let ended_as_expected = if scenario
        .expect
        .tools
        .iter()
        .any(|t| t == "transfer_to_human")
    {
        Some(end_reason == Some("transferred"))
    } else if scenario.expect.tools.iter().any(|t| t == "end_call") {
        Some(end_reason == Some("agent_ended"))
    } else {
        None
    };
    CallScore {
        name: scenario.name.clone(),
        fields,
        reasked,
        apologies,
        cut_lines,
        ended_as_expected,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scenario::Expectation;

    fn scenario() -> Scenario {
        Scenario {
            name: "t".into(),
            today: NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(),
            caller_phone: None,
            caller: vec![
                "My name is Ana Lopez.".into(),
                "It happened yesterday on Main Street.".into(),
                "No, nobody was hurt.".into(),
            ],
            expect: Expectation {
                claim: [
                    ("caller_name".to_owned(), json!("Ana Lopez")),
                    ("incident_date".to_owned(), json!("2026-11-27")),
                    ("injuries".to_owned(), json!(false)),
                ]
                .into_iter()
                .collect(),
                tools: vec!["end_call".into()],
            },
        }
    }

    #[test]
    fn relative_dates_are_re_read_for_the_day_of_the_call() {
        let config = AgentConfig::default();
        let moved = scenario().on(NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(), &config);
        assert_eq!(moved.expect.claim["incident_date"], json!("2026-12-02"));
        assert_eq!(moved.expect.claim["caller_name"], json!("Ana Lopez"));
    }

    #[test]
    fn a_call_is_scored_on_its_claim_its_questions_and_its_turns() {
        let config = AgentConfig::default();
        let scenario = scenario();
        let claim: Map<String, Value> = [
            ("caller_name".to_owned(), json!("Ana Lopez")),
            ("incident_date".to_owned(), json!("2026-11-27")),
        ]
        .into_iter()
        .collect();
        let t = |s: &str, x: &str| (s.to_owned(), x.to_owned());
        let transcript = [
            t("agent", "Thank you for calling Contoso Insurance."),
            t("caller", "My name is Ana Lopez."),
            t("agent", "Thank you, Ana. What is your policy number?"),
            t("caller", "It happened yesterday"),
            t(
                "agent",
                "I'm sorry, that took too long on my side. Could you say that again?",
            ),
            t("caller", "on Main Street."),
            t("agent", "Got it. May I have your full name, please?"),
            t("caller", "No, nobody was hurt."),
            t("agent", "Thank you for calling Contoso Insurance. Goodbye!"),
        ];
        // A turn written in other words than its line is the next line, not a cut.
        assert_eq!(
            align(
                &["One two three.".to_owned(), "Four five six.".to_owned()],
                &["One two three.", "456"]
            ),
            [0, 1]
        );
        let score = score_call(
            &config,
            &scenario,
            &claim,
            &transcript,
            Some("agent_ended"),
            "took too long",
        );
        assert_eq!(score.correct(), 2);
        assert_eq!(score.apologies, 1);
        assert_eq!(score.cut_lines, [2]);
        assert_eq!(score.reasked, [(2, "caller_name".to_owned())]);
        assert_eq!(score.ended_as_expected, Some(true));

        // The same line in two utterances with nothing said between: one turn, not cut.
        let transcript = [
            t("agent", "Thank you for calling Contoso Insurance."),
            t("caller", "My name is Ana Lopez."),
            t("agent", "Thank you, Ana. What is your policy number?"),
            t("caller", "It happened yesterday"),
            t("caller", "on Main Street."),
            t("agent", "Got it. Was anyone hurt?"),
            t("caller", "No, nobody was hurt."),
        ];
        let score = score_call(&config, &scenario, &claim, &transcript, None, "too long");
        assert!(score.cut_lines.is_empty(), "{:?}", score.cut_lines);
    }
}
