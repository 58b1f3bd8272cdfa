//! Sentence embeddings for the knowledge base: text in, a unit vector out, so that cosine similarity is a
//! dot product.
//!
//! The shipped model is all-MiniLM-L6-v2, a six-layer BERT in safetensors. [`BertEmbedder`] runs it with
//! its own forward pass ([`bert`]) and WordPiece tokenizer read from `tokenizer.json` ([`wordpiece`]):
//! a few hundred lines instead of a tensor framework and a tokenizer library, which cost minutes of every
//! build for one small model. Token vectors are mean-pooled and L2-normalised, as the model was trained.
//! Its vectors match the reference implementation's (Hugging Face's `BertModel` as candle ran it) to a
//! cosine of 0.99999 on the recorded texts of `tests/embedded.rs`.

mod bert;
mod wordpiece;

use std::path::Path;

use crate::LlmError;

use bert::{Bert, BertConfig};
use wordpiece::WordPiece;

/// Turns text into vectors whose cosine similarity says how close their meanings are.
pub trait Embedder: Send + Sync {
    /// Which model, for logs and for refusing to mix vectors of different models.
    fn name(&self) -> &str;
    /// Length of every vector.
    fn dimensions(&self) -> usize;
    /// One unit-length vector per text, in order. Blocking: CPU work.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, LlmError>;
}

/// A BERT sentence encoder (all-MiniLM-L6-v2 and its kin) on the CPU.
#[derive(Debug)]
pub struct BertEmbedder {
    name: String,
    model: Bert,
    tokenizer: WordPiece,
    dimensions: usize,
}

/// Tokens per text; the model was trained on at most 256 word pieces and longer input is cut.
const MAX_TOKENS: usize = 256;

impl BertEmbedder {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, LlmError> {
        let name = format!(
            "bert:{}",
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let fail = |what: &str, e: &dyn std::fmt::Display| LlmError::Engine {
            engine: name.clone(),
            detail: format!("{what} in {}: {e}", dir.display()),
        };
        let config_text = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| fail("cannot read config.json", &e))?;
        let config: BertConfig =
            serde_json::from_str(&config_text).map_err(|e| fail("bad config.json", &e))?;
        let tokenizer_text = std::fs::read_to_string(dir.join("tokenizer.json"))
            .map_err(|e| fail("cannot read tokenizer.json", &e))?;
        let tokenizer =
            WordPiece::from_json(&tokenizer_text).map_err(|e| fail("bad tokenizer.json", &e))?;
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| fail("cannot read model.safetensors", &e))?;
        let dimensions = config.hidden_size;
        let model = Bert::load(config, &weights).map_err(|e| fail("bad model.safetensors", &e))?;
        Ok(Self {
            name,
            model,
            tokenizer,
            dimensions,
        })
    }

    /// The word-piece ids the model reads for `text`, framed by `[CLS]` and `[SEP]` and cut at the
    /// model's limit: what a chunk of text costs, and what a tokenizer test compares.
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text, self.max_tokens())
    }

    fn max_tokens(&self) -> usize {
        MAX_TOKENS.min(self.model.max_tokens())
    }
}

impl Embedder for BertEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, LlmError> {
        texts
            .iter()
            .map(|text| self.model.embed(&self.token_ids(text)))
            .collect::<Result<_, _>>()
            .map_err(|e| LlmError::Engine {
                engine: self.name.clone(),
                detail: e.to_string(),
            })
    }
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
