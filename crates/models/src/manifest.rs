//! The checked-in list of models, their packages and the SHA-256 of every file we keep.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;

use crate::ModelsError;

const MANIFEST_TOML: &str = include_str!("../manifest.toml");

/// Every model this build can provision.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// In documentation order.
    #[serde(rename = "model")]
    pub models: Vec<ModelSpec>,
}

/// What a model is for; shown by `models list` and used to pick defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Speech-to-text.
    Stt,
    /// Voice activity detection.
    Vad,
    /// Text-to-speech.
    Tts,
    /// Language model.
    Llm,
    /// Sentence embeddings for the knowledge base.
    Embedding,
    /// An inference library the models run on.
    Runtime,
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelKind::Stt => "stt",
            ModelKind::Vad => "vad",
            ModelKind::Tts => "tts",
            ModelKind::Llm => "llm",
            ModelKind::Embedding => "embedding",
            ModelKind::Runtime => "runtime",
        })
    }
}

/// One model: a named set of files built from one or more packages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Name used on the command line and in configuration.
    pub name: String,
    /// Role.
    pub kind: ModelKind,
    /// One line for `models list`.
    pub description: String,
    /// Licence of the weights.
    pub license: String,
    /// The languages a recogniser hears or a voice speaks (BCP 47: "en", "en-US", "ja"), or
    /// "multilingual" for a recogniser of many; empty where the language does not matter.
    #[serde(default)]
    pub languages: Vec<String>,
    /// Fetched by `models fetch` with no names.
    pub default: bool,
    /// Packages the files come from.
    #[serde(rename = "package")]
    pub packages: Vec<PackageSpec>,
    /// Files kept in MODELS_DIR.
    #[serde(rename = "file")]
    pub files: Vec<FileSpec>,
    /// Files computed from `files` by a converter of ours (deterministic, so pinned like the rest).
    #[serde(default)]
    pub derived: Vec<DerivedSpec>,
}

/// A file made from a model's fetched files by one of our converters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedSpec {
    /// Path relative to MODELS_DIR.
    pub path: String,
    /// Exact size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Which converter makes it (`whisper-ct2-ggml`).
    pub converter: String,
}

impl ModelSpec {
    /// Bytes on disk once provisioned.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum::<u64>()
            + self.derived.iter().map(|d| d.size).sum::<u64>()
    }

    /// The package declared under that name.
    pub fn package(&self, name: &str) -> Option<&PackageSpec> {
        self.packages.iter().find(|p| p.name == name)
    }
}

/// Which registry, and so which client, a package comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registry {
    /// The Python Package Index, through `pip download`.
    Pypi,
    /// The npm registry, through `npm pack`.
    Npm,
}

impl Registry {
    /// Human name for messages.
    pub fn label(self) -> &'static str {
        match self {
            Registry::Pypi => "PyPI",
            Registry::Npm => "the npm registry",
        }
    }
}

/// A pinned registry package.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSpec {
    /// Registry.
    pub registry: Registry,
    /// Package name.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// Archive size in bytes, for download progress.
    pub size: u64,
    /// Extra `pip download` arguments (platform wheels: pin the Python version and platform).
    #[serde(default)]
    pub pip_args: Vec<String>,
}

/// A file kept in MODELS_DIR.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Path relative to MODELS_DIR.
    pub path: String,
    /// Exact size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Archive members concatenated, in order, to make the file.
    pub parts: Vec<PartRef>,
}

/// `package:member/path/in/archive`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRef {
    /// Package name (as in the model's `package` list).
    pub package: String,
    /// Path inside the package archive.
    pub member: String,
}

impl<'de> Deserialize<'de> for PartRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        // Package names may start with '@scope/', which holds no ':'; the member follows the last ':'.
        let (package, member) = text.rsplit_once(':').ok_or_else(|| {
            serde::de::Error::custom(format!("part '{text}' is not 'package:member'"))
        })?;
        Ok(PartRef {
            package: package.to_owned(),
            member: member.to_owned(),
        })
    }
}

impl Manifest {
    /// The manifest compiled into this binary.
    pub fn builtin() -> Result<Self, ModelsError> {
        Self::parse(MANIFEST_TOML)
    }

    /// Parses and checks a manifest.
    pub fn parse(text: &str) -> Result<Self, ModelsError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| ModelsError::Manifest(e.to_string()))?;
        manifest.check()?;
        Ok(manifest)
    }

    fn check(&self) -> Result<(), ModelsError> {
        let mut names = HashSet::new();
        let mut paths = HashSet::new();
        for model in &self.models {
            if !names.insert(model.name.as_str()) {
                return Err(ModelsError::Manifest(format!(
                    "model {} is listed twice",
                    model.name
                )));
            }
            for file in &model.files {
                if !paths.insert(file.path.as_str()) {
                    return Err(ModelsError::Manifest(format!(
                        "file {} is listed twice",
                        file.path
                    )));
                }
                if file.path.starts_with('/')
                    || file.path.split('/').any(|c| c == ".." || c.is_empty())
                {
                    return Err(ModelsError::Manifest(format!(
                        "file path {} must stay inside MODELS_DIR",
                        file.path
                    )));
                }
                if file.sha256.len() != 64
                    || !file
                        .sha256
                        .chars()
                        .all(|c| matches!(c, '0'..='9' | 'a'..='f'))
                {
                    return Err(ModelsError::Manifest(format!(
                        "{}: sha256 must be 64 lower-case hex digits",
                        file.path
                    )));
                }
                if file.parts.is_empty() {
                    return Err(ModelsError::Manifest(format!("{} has no parts", file.path)));
                }
                for part in &file.parts {
                    if model.package(&part.package).is_none() {
                        return Err(ModelsError::Manifest(format!(
                            "{} names package {} which model {} does not declare",
                            file.path, part.package, model.name
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The model called `name`.
    pub fn model(&self, name: &str) -> Result<&ModelSpec, ModelsError> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| ModelsError::UnknownModel {
                name: name.to_owned(),
                known: self
                    .models
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// What `models fetch` gets with no names.
    pub fn defaults(&self) -> impl Iterator<Item = &ModelSpec> {
        self.models.iter().filter(|m| m.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_manifest_is_valid() {
        let m = Manifest::builtin().unwrap();
        assert!(m.defaults().count() >= 4);
        for kind in [
            ModelKind::Stt,
            ModelKind::Vad,
            ModelKind::Tts,
            ModelKind::Llm,
            ModelKind::Embedding,
        ] {
            assert!(
                m.defaults().any(|d| d.kind == kind),
                "no default {kind} model"
            );
        }
    }

    #[test]
    fn recognisers_and_voices_say_their_languages() {
        let m = Manifest::builtin().unwrap();
        let languages = |name: &str| m.model(name).unwrap().languages.join(",");
        assert_eq!(languages("whisper-tiny"), "en");
        assert_eq!(languages("whisper-base"), "multilingual");
        assert_eq!(languages("piper-en_US-joe-medium"), "en-US");
        assert_eq!(languages("kokoro-voices-ja"), "ja");
        for model in &m.models {
            let speaks = model.kind == ModelKind::Stt
                || (model.kind == ModelKind::Tts && model.name != "kokoro-82m");
            assert_eq!(
                !model.languages.is_empty(),
                speaks,
                "{}: {:?}",
                model.name,
                model.languages
            );
        }
    }

    #[test]
    fn scoped_npm_packages_split_at_the_last_colon() {
        let m = Manifest::builtin().unwrap();
        let part = &m.model("silero-vad").unwrap().files[0].parts[0];
        assert_eq!(part.package, "@livekit/agents-plugin-silero");
        assert_eq!(part.member, "package/dist/silero_vad.onnx");
    }

    #[test]
    fn unknown_models_list_the_known_ones() {
        let m = Manifest::builtin().unwrap();
        let err = m.model("gpt-9").unwrap_err().to_string();
        assert!(err.contains("whisper-tiny"), "{err}");
    }

    #[test]
    fn paths_escaping_the_models_dir_are_refused() {
        let bad = r#"
            [[model]]
            name = "x"
            kind = "llm"
            description = ""
            license = ""
            default = false
            package = [{ registry = "pypi", name = "p", version = "1", size = 1 }]
            file = [{ path = "../etc/passwd", size = 1, sha256 = "0000000000000000000000000000000000000000000000000000000000000000", parts = ["p:a"] }]
        "#;
        assert!(
            Manifest::parse(bad)
                .unwrap_err()
                .to_string()
                .contains("inside MODELS_DIR")
        );
    }

    #[test]
    fn parts_must_name_a_declared_package() {
        let bad = r#"
            [[model]]
            name = "x"
            kind = "llm"
            description = ""
            license = ""
            default = false
            package = [{ registry = "pypi", name = "p", version = "1", size = 1 }]
            file = [{ path = "x.bin", size = 1, sha256 = "0000000000000000000000000000000000000000000000000000000000000000", parts = ["q:a"] }]
        "#;
        assert!(
            Manifest::parse(bad)
                .unwrap_err()
                .to_string()
                .contains("does not declare")
        );
    }
}
