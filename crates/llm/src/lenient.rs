//! Tool-call arguments as small models write them: almost JSON. We accept a JSON object, or one wrapped in
//! a code fence or surrounded by prose, with trailing commas, single quotes or unquoted keys repaired;
//! an object serialised into a string (`"{\"a\": 1}"`) is unwrapped. Anything else is an error the agent
//! reports back to the model instead of acting on.

use serde_json::Value;

/// Parses tool-call arguments leniently; `Err` says what was wrong.
pub fn parse_arguments(raw: &str) -> Result<Value, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
        return unwrap_string(value);
    }
    let Some(object) = first_object(trimmed) else {
        return Err(format!("no JSON object in {:?}", shorten(trimmed)));
    };
    if let Ok(value) = serde_json::from_str::<Value>(object) {
        return unwrap_string(value);
    }
    let repaired = repair(object);
    serde_json::from_str::<Value>(&repaired)
        .map_err(|e| format!("arguments are not JSON ({e}): {:?}", shorten(trimmed)))
        .and_then(unwrap_string)
}

/// Parses a tool call a model wrote as text instead of through the tool API:
/// `{"name": "update_claim", "arguments": {...}}` (also `"parameters"`), possibly in a code fence.
pub fn parse_text_tool_call(text: &str) -> Option<(String, Value)> {
    let object = first_object(text)?;
    let value = serde_json::from_str::<Value>(object)
        .ok()
        .or_else(|| serde_json::from_str::<Value>(&repair(object)).ok())?;
    let name = value.get("name")?.as_str()?.to_owned();
    let arguments = value
        .get("arguments")
        .or_else(|| value.get("parameters"))
        .cloned()
        .unwrap_or(Value::Object(serde_json::Map::new()));
    let arguments = match arguments {
        Value::String(s) => parse_arguments(&s).ok()?,
        other => other,
    };
    arguments.is_object().then_some((name, arguments))
}

fn unwrap_string(value: Value) -> Result<Value, String> {
    match value {
        Value::Object(_) => Ok(value),
        Value::String(inner) => match serde_json::from_str::<Value>(&inner) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(format!(
                "arguments are a string, not an object: {:?}",
                shorten(&inner)
            )),
        },
        other => Err(format!("arguments are {other}, not an object")),
    }
}

/// The first balanced `{…}` in `text`, braces inside strings ignored.
fn first_object(text: &str) -> Option<&str> {
    let start = text.find('{')?;
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text[start..].char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[start..start + i + 1]);
                }
            }
            _ => {}
        }
    }
    None
}

/// Single-quoted strings to double-quoted, bare keys quoted, trailing commas dropped, Python literals
/// (`True`, `False`, `None`) to JSON.
fn repair(object: &str) -> String {
    let chars: Vec<char> = object.chars().collect();
    let mut out = String::with_capacity(object.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' => {
                out.push('"');
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        out.push('\\');
                        out.push(chars[i + 1]);
                        i += 2;
                        continue;
                    }
                    if chars[i] == '"' {
                        out.push('\\');
                    }
                    out.push(chars[i]);
                    i += 1;
                }
                out.push('"');
                i += 1;
            }
            ',' => {
                let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
                if !matches!(next, Some('}') | Some(']')) {
                    out.push(',');
                }
                i += 1;
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                if next == Some(&':') {
                    out.push('"');
                    out.push_str(&word);
                    out.push('"');
                } else {
                    out.push_str(match word.as_str() {
                        "True" => "true",
                        "False" => "false",
                        "None" => "null",
                        other => other,
                    });
                }
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    out
}

fn shorten(text: &str) -> String {
    const MAX: usize = 120;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn accepts_what_small_models_write() {
        let cases = [
            (
                r#"{"field": "caller_name", "value": "Ana"}"#,
                json!({"field": "caller_name", "value": "Ana"}),
            ),
            (
                "```json\n{\"field\": \"email\"}\n```",
                json!({"field": "email"}),
            ),
            (
                "Sure! {'field': 'injuries', 'value': False,} done",
                json!({"field": "injuries", "value": false}),
            ),
            (
                "{field: \"policy_number\", value: \"AB-12\"}",
                json!({"field": "policy_number", "value": "AB-12"}),
            ),
            (
                r#""{\"reason\": \"asked for a human\"}""#,
                json!({"reason": "asked for a human"}),
            ),
            ("", json!({})),
            (
                "{\"text\": \"it's {fine}\"}",
                json!({"text": "it's {fine}"}),
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(parse_arguments(raw), Ok(expected), "{raw}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        for raw in [
            "[1, 2]",
            "caller name is Ana",
            "{\"a\": ",
            "42",
            "\"just text\"",
        ] {
            assert!(parse_arguments(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn finds_a_tool_call_written_as_text() {
        let text = "I'll note that.\n```json\n{\"name\": \"update_claim\", \"parameters\": {\"field\": \"email\", \"value\": \"a@b.co\"}}\n```";
        assert_eq!(
            parse_text_tool_call(text),
            Some((
                "update_claim".into(),
                json!({"field": "email", "value": "a@b.co"})
            ))
        );
        assert_eq!(parse_text_tool_call("Thank you, goodbye."), None);
        assert_eq!(
            parse_text_tool_call(r#"{"name": "end_call", "arguments": "{\"reason\": \"done\"}"}"#),
            Some(("end_call".into(), json!({"reason": "done"})))
        );
    }
}
