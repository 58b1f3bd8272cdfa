//! JSON Schema → GBNF, the grammar language llama.cpp's sampler enforces.
//!
//! A small model asked for JSON drifts: it forgets a quote, invents a field, or talks instead. Sampling
//! under a grammar makes every token it can choose one that keeps the output a value of the schema, so the
//! answer always parses. This covers the part of JSON Schema that tool arguments and extraction use:
//! objects (properties in the order `required` lists them, then the others; the others may be left out
//! only by giving them as `null`-able), strings (with `maxLength`), `enum` and `const`, numbers, integers, booleans,
//! `null`, arrays (with `maxItems`), `anyOf`/`oneOf` and a list of types.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

use crate::LlmError;

/// The longest string the grammar lets the model write when the schema sets no `maxLength`; it bounds
/// how long a runaway string can keep a call waiting.
const DEFAULT_MAX_STRING: u64 = 200;

/// The grammar whose sentences are exactly the JSON values of `schema` (written compactly, with at most
/// one space between tokens). The start rule is `root`.
pub fn json_schema_to_gbnf(schema: &Value) -> Result<String, LlmError> {
    let mut builder = Builder::default();
    let root = builder.rule_for(schema, "root")?;
    Ok(builder.finish(&root))
}

/// The grammar of an answer that is either prose (not starting with `{`) or exactly one tool call written
/// as `{"name": "<tool>", "arguments": {…}}` with arguments valid for that tool's schema. Prose streams to
/// the caller as it comes; a call is parsed when complete.
pub fn text_or_tool_call_gbnf(tools: &[crate::ToolSpec]) -> Result<String, LlmError> {
    let mut builder = Builder::default();
    let mut calls = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let arguments = builder.rule_for(&tool.parameters, &format!("call{i}-arguments"))?;
        calls.push(format!(
            r#""{{" ws "\"name\"" ws ":" ws {} ws "," ws "\"arguments\"" ws ":" ws {arguments} ws "}}""#,
            literal(&Value::String(tool.name.clone()))?
        ));
    }
    builder
        .rules
        .insert("prose".into(), r#"[^{ \t\n] [^\x00]*"#.into());
    let root = if calls.is_empty() {
        "prose".to_owned()
    } else {
        format!("prose | {}", calls.join(" | "))
    };
    Ok(builder.finish(&root))
}

const PRIMITIVES: &str = r#"ws ::= " "?
char ::= [^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
string ::= "\"" char{0,200} "\""
number ::= "-"? ([0-9] | [1-9] [0-9]{0,15}) ("." [0-9]{1,10})? ([eE] [-+]? [0-9]{1,3})?
integer ::= "-"? ([0-9] | [1-9] [0-9]{0,15})
boolean ::= "true" | "false"
null ::= "null"
"#;

#[derive(Default)]
struct Builder {
    rules: BTreeMap<String, String>,
}

impl Builder {
    /// The whole grammar: `root` as given, every rule made on the way, and the primitives.
    fn finish(&self, root: &str) -> String {
        let mut out = String::new();
        if root != "root" {
            let _ = writeln!(out, "root ::= {root}");
        }
        for (name, body) in &self.rules {
            let _ = writeln!(out, "{name} ::= {body}");
        }
        out.push_str(PRIMITIVES);
        out
    }

    /// Defines `name` for `schema` when it needs a rule of its own, and returns what refers to it.
    fn rule_for(&mut self, schema: &Value, name: &str) -> Result<String, LlmError> {
        let body = self.body(schema, name)?;
        if is_symbol(&body) && name != "root" {
            return Ok(body);
        }
        self.rules.insert(name.to_owned(), body);
        Ok(name.to_owned())
    }

    fn body(&mut self, schema: &Value, name: &str) -> Result<String, LlmError> {
        let Some(object) = schema.as_object() else {
            // `true` or `{}`: any JSON value is allowed; a string is the useful reading for extraction.
            return Ok("string".into());
        };
        if let Some(value) = object.get("const") {
            return literal(value);
        }
        if let Some(source) = object.get(COPY_FROM).and_then(Value::as_str) {
            return Ok(self.span_of(source, name));
        }
        if let Some(values) = object.get("enum").and_then(Value::as_array) {
            let alternatives = values.iter().map(literal).collect::<Result<Vec<_>, _>>()?;
            return Ok(format!("({})", alternatives.join(" | ")));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(options) = object.get(key).and_then(Value::as_array) {
                let mut alternatives = Vec::with_capacity(options.len());
                for (i, option) in options.iter().enumerate() {
                    alternatives.push(self.rule_for(option, &format!("{name}-{i}"))?);
                }
                return Ok(format!("({})", alternatives.join(" | ")));
            }
        }
        match object.get("type") {
            Some(Value::Array(types)) => {
                let mut alternatives = Vec::with_capacity(types.len());
                for ty in types {
                    let mut single = object.clone();
                    single.insert("type".into(), ty.clone());
                    let ty_name = ty.as_str().unwrap_or("any");
                    alternatives
                        .push(self.rule_for(&Value::Object(single), &format!("{name}-{ty_name}"))?);
                }
                Ok(format!("({})", alternatives.join(" | ")))
            }
            Some(Value::String(ty)) => self.typed(ty, object, name),
            None if object.contains_key("properties") => self.typed("object", object, name),
            _ => Ok("string".into()),
        }
    }

    fn typed(
        &mut self,
        ty: &str,
        object: &serde_json::Map<String, Value>,
        name: &str,
    ) -> Result<String, LlmError> {
        Ok(match ty {
            "string" => match object.get("maxLength").and_then(Value::as_u64) {
                Some(max) if max < DEFAULT_MAX_STRING => format!(r#""\"" char{{0,{max}}} "\"""#),
                _ => "string".into(),
            },
            "number" => "number".into(),
            "integer" => "integer".into(),
            "boolean" => "boolean".into(),
            "null" => "null".into(),
            "array" => {
                let items = match object.get("items") {
                    Some(items) => self.rule_for(items, &format!("{name}-item"))?,
                    None => "string".into(),
                };
                let max = object.get("maxItems").and_then(Value::as_u64).unwrap_or(8);
                if max == 0 {
                    r#""[" ws "]""#.into()
                } else {
                    let rest = max - 1;
                    format!(r#""[" ws ({items} ("," ws {items}){{0,{rest}}})? ws "]""#)
                }
            }
            "object" => self.object(object, name)?,
            other => {
                return Err(LlmError::Grammar(format!(
                    "the JSON Schema type `{other}` has no grammar"
                )));
            }
        })
    }

    fn object(
        &mut self,
        object: &serde_json::Map<String, Value>,
        name: &str,
    ) -> Result<String, LlmError> {
        let Some(properties) = object.get("properties").and_then(Value::as_object) else {
            return Ok(r#""{" ws "}""#.into());
        };
        let mut members = Vec::with_capacity(properties.len());
        for (key, schema) in ordered_properties(object, properties) {
            let value = self.rule_for(schema, &format!("{name}-{}", rule_name(key)))?;
            members.push(format!(
                r#"{} ws ":" ws {value}"#,
                literal(&Value::String(key.clone()))?
            ));
        }
        if members.is_empty() {
            return Ok(r#""{" ws "}""#.into());
        }
        Ok(format!(
            r#""{{" ws {} ws "}}""#,
            members.join(r#" "," ws "#)
        ))
    }
}

/// An object's properties in the order its `required` list gives, then the rest in map order. A JSON
/// object's keys have no order (serde_json sorts them), but the order the model writes fields in matters:
/// a summary written before the verdict on it reads better, and a small model that starts with an odd
/// field can derail.
fn ordered_properties<'s>(
    object: &'s serde_json::Map<String, Value>,
    properties: &'s serde_json::Map<String, Value>,
) -> Vec<(&'s String, &'s Value)> {
    let required: Vec<&str> = object
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut ordered: Vec<(&String, &Value)> = required
        .iter()
        .filter_map(|name| properties.get_key_value(*name))
        .collect();
    ordered.extend(
        properties
            .iter()
            .filter(|(key, _)| !required.contains(&key.as_str())),
    );
    ordered
}

impl Builder {
    /// A JSON string that is a run of consecutive words of `source`: word `i`'s rule is the word followed,
    /// optionally, by a space and word `i + 1`'s rule, and a span starts at any word. The model chooses where
    /// it starts and stops, and cannot write anything the text does not say.
    fn span_of(&mut self, source: &str, name: &str) -> String {
        let words: Vec<&str> = span_words(source);
        if words.is_empty() {
            return r#""\"\"""#.into();
        }
        let rule = |i: usize| format!("{name}-w{i}");
        for (i, word) in words.iter().enumerate() {
            let word = literal(&Value::String((*word).to_owned()))
                .map(|quoted| {
                    // The word without the JSON quotes: strip `"\"` and `\""` from the literal's ends.
                    format!("\"{}\"", &quoted[3..quoted.len() - 3])
                })
                .unwrap_or_default();
            let body = match words.get(i + 1) {
                Some(_) => format!(r#"{word} (" " {})?"#, rule(i + 1)),
                None => word,
            };
            self.rules.insert(rule(i), body);
        }
        let starts: Vec<String> = (0..words.len()).map(rule).collect();
        format!(r#""\"" ({}) "\"""#, starts.join(" | "))
    }
}

/// The words of a text as a span may use them: split at white space, with punctuation at their ends
/// dropped (inner punctuation stays: "O'Brien", "rear-ended", "5th").
pub fn span_words(text: &str) -> Vec<&str> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .collect()
}

/// The schema keyword that asks for a copy of part of a text: `{"type": "string", "x-copy-from": TEXT}`.
/// Servers ignore it (unknown keywords are allowed); the embedded engine enforces it.
pub const COPY_FROM: &str = "x-copy-from";

/// A GBNF literal for a JSON value: the value's JSON text, quoted for the grammar.
fn literal(value: &Value) -> Result<String, LlmError> {
    let json = serde_json::to_string(value)
        .map_err(|e| LlmError::Grammar(format!("cannot write {value}: {e}")))?;
    let mut out = String::with_capacity(json.len() + 2);
    out.push('"');
    for c in json.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// A rule name from a property name: GBNF names are letters, digits and dashes.
fn rule_name(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn is_symbol(body: &str) -> bool {
    body.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_object_keeps_the_schema_order_and_types() {
        let grammar = json_schema_to_gbnf(&json!({
            "type": "object",
            "properties": {
                "field": {"enum": ["caller_name", "email"]},
                "value": {"type": "string", "maxLength": 40},
                "sure": {"type": "boolean"},
            },
            "required": ["field", "value"],
        }))
        .unwrap();
        let root = grammar.lines().find(|l| l.starts_with("root ::=")).unwrap();
        // `required` gives the order (serde_json's map sorts keys), the others follow.
        let at = |key: &str| root.find(&format!(r#""\"{key}\"" ws ":""#)).unwrap();
        assert!(
            at("field") < at("value") && at("value") < at("sure"),
            "{root}"
        );
        let reordered = json_schema_to_gbnf(&json!({
            "type": "object",
            "properties": {"a_verdict": {"type": "boolean"}, "summary": {"type": "string"}},
            "required": ["summary", "a_verdict"],
        }))
        .unwrap();
        let root2 = reordered
            .lines()
            .find(|l| l.starts_with("root ::="))
            .unwrap();
        assert!(
            root2.find("summary").unwrap() < root2.find("a_verdict").unwrap(),
            "{root2}"
        );
        assert!(
            grammar.contains(r#"root-field ::= ("\"caller_name\"" | "\"email\"")"#),
            "{grammar}"
        );
        assert!(
            grammar.contains(r#"root-value ::= "\"" char{0,40} "\"""#),
            "{grammar}"
        );
        assert!(root.contains("ws boolean"), "{root}");
    }

    #[test]
    fn nullable_arrays_and_alternatives_have_rules() {
        let grammar = json_schema_to_gbnf(&json!({
            "type": "object",
            "properties": {
                "date": {"type": ["string", "null"]},
                "tags": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
                "either": {"anyOf": [{"const": 1}, {"type": "number"}]},
            },
        }))
        .unwrap();
        assert!(
            grammar.contains("root-date ::= (string | null)"),
            "{grammar}"
        );
        assert!(
            grammar.contains(r#"root-tags ::= "[" ws (integer ("," ws integer){0,2})? ws "]""#),
            "{grammar}"
        );
        assert!(
            grammar.contains("root-either ::= (root-either-0 | number)"),
            "{grammar}"
        );
        assert!(grammar.contains(r#"root-either-0 ::= "1""#), "{grammar}");
    }

    #[test]
    fn tool_calls_name_the_tool_and_constrain_its_arguments() {
        let tools = [crate::ToolSpec {
            name: "end_call".into(),
            description: "Hang up.".into(),
            parameters: json!({"type": "object", "properties": {"reason": {"type": "string"}}}),
        }];
        let grammar = text_or_tool_call_gbnf(&tools).unwrap();
        assert!(
            grammar.starts_with("root ::= prose | \"{\" ws \"\\\"name\\\"\""),
            "{grammar}"
        );
        assert!(
            grammar.contains(r#"\"\\\"end_call\\\"\" ws "," ws"#) || grammar.contains("end_call"),
            "{grammar}"
        );
        assert!(grammar.contains("call0-arguments ::= "), "{grammar}");
    }

    #[test]
    fn a_copy_is_a_run_of_the_sources_words() {
        let grammar = json_schema_to_gbnf(&json!({
            "type": "object",
            "properties": {"name": {"type": "string", "x-copy-from": "It's Kevin O'Brien, \"hi\"."}},
        }))
        .unwrap();
        assert!(grammar.contains(r#"root-name ::= "\"" (root-name-w0 | root-name-w1 | root-name-w2 | root-name-w3) "\"""#), "{grammar}");
        assert!(
            grammar.contains(r#"root-name-w0 ::= "It's" (" " root-name-w1)?"#),
            "{grammar}"
        );
        assert!(
            grammar.contains(r#"root-name-w2 ::= "O'Brien" (" " root-name-w3)?"#),
            "{grammar}"
        );
        assert!(
            grammar.contains(r#"root-name-w3 ::= "\\\"hi""#)
                || grammar.contains("root-name-w3 ::= \"hi\""),
            "{grammar}"
        );
        assert_eq!(
            span_words("  No,  nobody -- was hurt. "),
            ["No", "nobody", "was", "hurt"]
        );
    }

    #[test]
    fn an_unknown_type_is_an_error() {
        let error = json_schema_to_gbnf(&json!({"type": "tuple"})).unwrap_err();
        assert!(error.to_string().contains("tuple"), "{error}");
    }
}
