//! Resolves each setting's raw text from the three layers: defaults < `config.yaml` < environment.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use super::ConfigError;
use super::settings::{self, Setting};
use crate::secret::REDACTED;

/// Where a setting's effective value came from; `config show` prints it so an operator can see why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default of the settings table.
    Default,
    /// A `config.yaml` file.
    File(PathBuf),
    /// An environment variable.
    Env,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Env => f.write_str("environment"),
        }
    }
}

/// A setting's effective text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The value as text, before typing.
    pub text: String,
    /// Which layer won.
    pub source: Source,
}

/// The effective raw value of every setting that has one.
#[derive(Clone, Default)]
pub struct ResolvedSettings {
    values: HashMap<&'static str, Resolved>,
}

/// Prints values like `config show` does: secrets redacted, so a logged `Config` leaks nothing.
impl fmt::Debug for ResolvedSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for setting in settings::ALL {
            if let Some(v) = self.values.get(setting.key) {
                let shown = if setting.secret {
                    REDACTED
                } else {
                    v.text.as_str()
                };
                map.entry(&setting.env, &format_args!("{shown:?} ({})", v.source));
            }
        }
        map.finish()
    }
}

impl ResolvedSettings {
    /// Layers the defaults, an optional config file's text and the environment.
    ///
    /// Empty environment variables count as unset: orchestrators often export `FOO=` for "no value".
    pub fn resolve(
        file: Option<(&Path, &str)>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let from_file = match file {
            Some((path, text)) => flatten_file(path, text)?,
            None => HashMap::new(),
        };
        let mut values = HashMap::new();
        for setting in settings::ALL {
            let env_value = env(setting.env).filter(|v| !v.trim().is_empty());
            let resolved = if let Some(text) = env_value {
                Some(Resolved {
                    text: text.trim().to_owned(),
                    source: Source::Env,
                })
            } else if let Some(text) = from_file.get(setting.key) {
                file.map(|(path, _)| Resolved {
                    text: text.clone(),
                    source: Source::File(path.to_owned()),
                })
            } else {
                setting.default.map(|text| Resolved {
                    text: text.to_owned(),
                    source: Source::Default,
                })
            };
            if let Some(resolved) = resolved {
                values.insert(setting.key, resolved);
            }
        }
        Ok(Self { values })
    }

    /// The effective value of a setting, if it has one.
    pub fn get(&self, setting: &Setting) -> Option<&Resolved> {
        self.values.get(setting.key)
    }
}

/// Parses a config file into `dotted.key -> text`, rejecting keys we do not know so a typo is an error,
/// not a silently ignored setting.
fn flatten_file(path: &Path, text: &str) -> Result<HashMap<String, String>, ConfigError> {
    let root: Value = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Yaml {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut out = HashMap::new();
    match root {
        Value::Null => {}
        Value::Mapping(_) => flatten(path, "", &root, &mut out)?,
        _ => {
            return Err(ConfigError::Yaml {
                path: path.to_owned(),
                message: "the top level must be a mapping of sections (server:, calls:, ...)"
                    .into(),
            });
        }
    }
    Ok(out)
}

fn flatten(
    path: &Path,
    prefix: &str,
    value: &Value,
    out: &mut HashMap<String, String>,
) -> Result<(), ConfigError> {
    let Value::Mapping(map) = value else {
        return Ok(());
    };
    for (k, v) in map {
        let name = match k {
            Value::String(s) => s.clone(),
            other => scalar_text(other).unwrap_or_else(|| "?".into()),
        };
        if prefix.is_empty() && name == AGENT_SECTION {
            // Structured (persona, claim schema, intents): read whole by `agent_section`.
            continue;
        }
        let key = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}.{name}")
        };
        if let Some(setting) = settings::by_key(&key) {
            match v {
                Value::Null => {}
                Value::Mapping(_) | Value::Sequence(_) => {
                    return Err(ConfigError::Yaml {
                        path: path.to_owned(),
                        message: format!("{key} must be a single value ({})", setting.allowed),
                    });
                }
                scalar => {
                    if let Some(text) = scalar_text(scalar) {
                        out.insert(key, text);
                    }
                }
            }
        } else if is_section(&key) {
            if !matches!(v, Value::Mapping(_) | Value::Null) {
                return Err(ConfigError::Yaml {
                    path: path.to_owned(),
                    message: format!("{key} is a section and must hold settings, not a value"),
                });
            }
            flatten(path, &key, v, out)?;
        } else {
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                key: key.clone(),
                hint: closest_key(&key),
            });
        }
    }
    Ok(())
}

/// The top-level section holding the agent's structured configuration.
const AGENT_SECTION: &str = "agent";

/// The file's `agent:` section as YAML, for the agent crate to read into its own types.
pub(super) fn agent_section(path: &Path, text: &str) -> Result<Option<Value>, ConfigError> {
    let root: Value = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Yaml {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    Ok(match root {
        Value::Mapping(map) => map.get(AGENT_SECTION).cloned().filter(|v| !v.is_null()),
        _ => None,
    })
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Tagged(t) => scalar_text(&t.value),
        Value::Null | Value::Mapping(_) | Value::Sequence(_) => None,
    }
}

fn is_section(key: &str) -> bool {
    let prefix = format!("{key}.");
    settings::ALL.iter().any(|s| s.key.starts_with(&prefix))
}

/// The known key sharing the longest suffix with a mistyped one (`server.prot` -> `server.port`).
fn closest_key(key: &str) -> Option<&'static str> {
    let last = key.rsplit('.').next().unwrap_or(key);
    settings::ALL
        .iter()
        .map(|s| s.key)
        .min_by_key(|candidate| {
            let cand_last = candidate.rsplit('.').next().unwrap_or(candidate);
            edit_distance(last, cand_last)
        })
        .filter(|candidate| {
            let cand_last = candidate.rsplit('.').next().unwrap_or(candidate);
            edit_distance(last, cand_last) <= 2
        })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::{SERVER_PORT, VAD_SENSITIVITY};

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn environment_beats_file_beats_default() {
        let file = "server:\n  port: 9000\naudio:\n  vad_sensitivity: 1\n";
        let env = |name: &str| (name == "SERVER_PORT").then(|| "9100".to_string());
        let r = ResolvedSettings::resolve(Some((Path::new("c.yaml"), file)), &env).unwrap();
        assert_eq!(r.get(&SERVER_PORT).unwrap().text, "9100");
        assert_eq!(r.get(&SERVER_PORT).unwrap().source, Source::Env);
        assert_eq!(r.get(&VAD_SENSITIVITY).unwrap().text, "1");
        assert!(matches!(
            r.get(&VAD_SENSITIVITY).unwrap().source,
            Source::File(_)
        ));
        let r = ResolvedSettings::resolve(None, &no_env).unwrap();
        assert_eq!(r.get(&SERVER_PORT).unwrap().text, "8000");
        assert_eq!(r.get(&SERVER_PORT).unwrap().source, Source::Default);
    }

    #[test]
    fn empty_environment_values_count_as_unset() {
        let env = |name: &str| (name == "SERVER_PORT").then(String::new);
        let r = ResolvedSettings::resolve(None, &env).unwrap();
        assert_eq!(r.get(&SERVER_PORT).unwrap().source, Source::Default);
    }

    #[test]
    fn a_typo_in_the_file_is_an_error_with_a_suggestion() {
        let err =
            ResolvedSettings::resolve(Some((Path::new("c.yaml"), "server:\n  prot: 1\n")), &no_env)
                .unwrap_err()
                .to_string();
        assert!(err.contains("server.prot"), "{err}");
        assert!(err.contains("server.port"), "{err}");
    }

    #[test]
    fn a_section_given_a_value_is_an_error() {
        let err = ResolvedSettings::resolve(Some((Path::new("c.yaml"), "server: 8000\n")), &no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("server is a section"), "{err}");
    }

    #[test]
    fn broken_yaml_names_the_file() {
        let err = ResolvedSettings::resolve(Some((Path::new("c.yaml"), "server: [\n")), &no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.yaml"), "{err}");
    }

    #[test]
    fn an_empty_file_is_fine() {
        assert!(ResolvedSettings::resolve(Some((Path::new("c.yaml"), "")), &no_env).is_ok());
    }
}
