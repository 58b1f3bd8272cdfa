//! Sentence embeddings for the knowledge base: text in, a unit vector out, so that cosine similarity is a
//! dot product.
//!
//! The shipped model is all-MiniLM-L6-v2, a six-layer BERT in safetensors; candle runs it on the CPU and the
//! Hugging Face tokenizer reads its `tokenizer.json`. Token vectors are mean-pooled over the real tokens
//! (padding masked out) and L2-normalised, as the model was trained.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use crate::LlmError;

/// Turns text into vectors whose cosine similarity says how close their meanings are.
pub trait Embedder: Send + Sync {
    /// Which model, for logs and for refusing to mix vectors of different models.
    fn name(&self) -> &str;
    /// Length of every vector.
    fn dimensions(&self) -> usize;
    /// One unit-length vector per text, in order. Blocking: CPU work.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, LlmError>;
}

/// A BERT sentence encoder (all-MiniLM-L6-v2 and its kin) run by candle.
pub struct BertEmbedder {
    name: String,
    model: BertModel,
    tokenizer: Tokenizer,
    dimensions: usize,
}

impl std::fmt::Debug for BertEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertEmbedder")
            .field("name", &self.name)
            .finish()
    }
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
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| fail("cannot read tokenizer.json", &e))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| fail("truncation", &e))?;
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| fail("cannot read model.safetensors", &e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| fail("bad model.safetensors", &e))?;
        let model = BertModel::load(vb, &config).map_err(|e| fail("cannot build the model", &e))?;
        Ok(Self {
            name,
            model,
            tokenizer,
            dimensions: config.hidden_size,
        })
    }

    fn run(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| format!("tokenizer: {e}"))?;
        let rows = encodings.len();
        let width = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(rows * width);
        let mut mask = Vec::with_capacity(rows * width);
        for encoding in &encodings {
            ids.extend(encoding.get_ids().iter().map(|&i| i64::from(i)));
            mask.extend(encoding.get_attention_mask().iter().map(|&m| m as f32));
        }
        let device = Device::Cpu;
        let tensor = |e: candle_core::Error| e.to_string();
        let ids = Tensor::from_vec(ids, (rows, width), &device).map_err(tensor)?;
        let types = ids.zeros_like().map_err(tensor)?;
        let mask = Tensor::from_vec(mask, (rows, width), &device).map_err(tensor)?;
        let hidden = self
            .model
            .forward(
                &ids,
                &types,
                Some(&mask.to_dtype(DType::I64).map_err(tensor)?),
            )
            .map_err(tensor)?;
        // Mean over real tokens: sum(hidden * mask) / sum(mask).
        let mask3 = mask.unsqueeze(2).map_err(tensor)?;
        let summed = hidden
            .broadcast_mul(&mask3)
            .map_err(tensor)?
            .sum(1)
            .map_err(tensor)?;
        let counts = mask3
            .sum(1)
            .map_err(tensor)?
            .clamp(1e-9, f32::MAX)
            .map_err(tensor)?;
        let mean = summed.broadcast_div(&counts).map_err(tensor)?;
        let norms = mean
            .sqr()
            .map_err(tensor)?
            .sum_keepdim(1)
            .map_err(tensor)?
            .sqrt()
            .map_err(tensor)?
            .clamp(1e-12, f32::MAX)
            .map_err(tensor)?;
        mean.broadcast_div(&norms)
            .map_err(tensor)?
            .to_vec2::<f32>()
            .map_err(tensor)
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
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.run(texts).map_err(|detail| LlmError::Engine {
            engine: self.name.clone(),
            detail,
        })
    }
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
