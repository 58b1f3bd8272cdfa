//! A BERT encoder's forward pass on the CPU, for sentence embeddings: embeddings, then per layer
//! self-attention and a GELU feed-forward block, each followed by a residual sum and layer norm, exactly as
//! the Hugging Face `BertModel` computes them. Weights come from `model.safetensors` (f32, f16 or bf16,
//! held as f32); matrix products run on `matrixmultiply`'s blocked SIMD kernels.
//!
//! One text is encoded at a time, so no padding and no attention mask are needed: a text's vectors are
//! the same alone or in a batch.

use safetensors::{Dtype, SafeTensorError, SafeTensors};
use serde::Deserialize;

/// Why the encoder could not be built from its files, or could not read a text.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BertError {
    /// config.json names an activation the encoder does not compute.
    #[error("activation {0} is not supported")]
    Activation(String),
    /// config.json's heads do not split the hidden size.
    #[error("{heads} heads do not divide a hidden size of {hidden}")]
    Heads { heads: usize, hidden: usize },
    /// The weights are not a safetensors file.
    #[error(transparent)]
    Format(#[from] SafeTensorError),
    /// A tensor is missing or unreadable.
    #[error("{tensor}: {source}")]
    Tensor {
        tensor: String,
        source: SafeTensorError,
    },
    /// A tensor of the wrong shape for the config.
    #[error("{tensor} has shape {got:?}, expected {expected:?}")]
    Shape {
        tensor: String,
        got: Vec<usize>,
        expected: Vec<usize>,
    },
    /// A tensor in a number format the encoder does not read.
    #[error("{tensor} is {dtype}; f32, f16 or bf16 expected")]
    Dtype { tensor: String, dtype: String },
    /// A text of no tokens, or of more than the model's positions.
    #[error("{tokens} tokens; 1 to {max} fit the model")]
    Length { tokens: usize, max: usize },
    /// A token the vocabulary does not have (a tokenizer for another model).
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    Token { id: usize, vocab: usize },
}

/// The fields of `config.json` the forward pass needs.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub(crate) hidden_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "layer_norm_eps")]
    layer_norm_eps: f32,
    #[serde(default = "gelu")]
    hidden_act: String,
}

fn layer_norm_eps() -> f32 {
    1e-12
}

fn gelu() -> String {
    "gelu".to_owned()
}

/// A dense layer: `y = x Wᵀ + b`, with `W` stored as `[out, in]` as PyTorch keeps it.
#[derive(Debug)]
struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

#[derive(Debug)]
struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

#[derive(Debug)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// A loaded BERT encoder.
#[derive(Debug)]
pub(crate) struct Bert {
    config: BertConfig,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
}

struct Weights<'a> {
    tensors: SafeTensors<'a>,
    /// `bert.` for checkpoints saved from a task model, empty for a bare encoder.
    prefix: &'static str,
}

impl Weights<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, BertError> {
        let full = format!("{}{name}", self.prefix);
        let view = self
            .tensors
            .tensor(&full)
            .map_err(|source| BertError::Tensor {
                tensor: full.clone(),
                source,
            })?;
        if view.shape() != shape {
            return Err(BertError::Shape {
                tensor: full,
                got: view.shape().to_vec(),
                expected: shape.to_vec(),
            });
        }
        let bytes = view.data();
        let values = match view.dtype() {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(BertError::Dtype {
                    tensor: full,
                    dtype: format!("{other:?}"),
                });
            }
        };
        Ok(values)
    }

    /// The first dimension of a table whose length the config does not give (vocabulary, segments).
    fn rows(&self, name: &str) -> Result<usize, BertError> {
        let full = format!("{}{name}", self.prefix);
        let view = self
            .tensors
            .tensor(&full)
            .map_err(|source| BertError::Tensor {
                tensor: full.clone(),
                source,
            })?;
        Ok(view.shape().first().copied().unwrap_or(0))
    }

    fn linear(&self, name: &str, inputs: usize, outputs: usize) -> Result<Linear, BertError> {
        Ok(Linear {
            weight: self.get(&format!("{name}.weight"), &[outputs, inputs])?,
            bias: self.get(&format!("{name}.bias"), &[outputs])?,
            inputs,
            outputs,
        })
    }

    fn norm(&self, name: &str, size: usize) -> Result<LayerNorm, BertError> {
        Ok(LayerNorm {
            gamma: self.get(&format!("{name}.weight"), &[size])?,
            beta: self.get(&format!("{name}.bias"), &[size])?,
        })
    }
}

impl Bert {
    /// Builds the encoder from a safetensors buffer.
    pub(crate) fn load(config: BertConfig, safetensors: &[u8]) -> Result<Self, BertError> {
        // BERT's "gelu" is the exact one; the tanh approximations ("gelu_new") would need their own.
        if config.hidden_act != "gelu" {
            return Err(BertError::Activation(config.hidden_act));
        }
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(BertError::Heads {
                heads: config.num_attention_heads,
                hidden: config.hidden_size,
            });
        }
        let tensors = SafeTensors::deserialize(safetensors)?;
        let prefix = if tensors
            .names()
            .iter()
            .any(|n| n.starts_with("bert.embeddings."))
        {
            "bert."
        } else {
            ""
        };
        let w = Weights { tensors, prefix };
        let h = config.hidden_size;
        let vocab = w.rows("embeddings.word_embeddings.weight")?;
        let types = w.rows("embeddings.token_type_embeddings.weight")?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            layers.push(Layer {
                query: w.linear(&format!("{p}.attention.self.query"), h, h)?,
                key: w.linear(&format!("{p}.attention.self.key"), h, h)?,
                value: w.linear(&format!("{p}.attention.self.value"), h, h)?,
                attention_out: w.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attention_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                intermediate: w.linear(
                    &format!("{p}.intermediate.dense"),
                    h,
                    config.intermediate_size,
                )?,
                output: w.linear(&format!("{p}.output.dense"), config.intermediate_size, h)?,
                output_norm: w.norm(&format!("{p}.output.LayerNorm"), h)?,
            });
        }
        Ok(Self {
            word: w.get("embeddings.word_embeddings.weight", &[vocab, h])?,
            position: w.get(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, h],
            )?,
            token_type: w.get("embeddings.token_type_embeddings.weight", &[types, h])?,
            embedding_norm: w.norm("embeddings.LayerNorm", h)?,
            layers,
            config,
        })
    }

    /// Most tokens one text may have (the position table's length).
    pub(crate) fn max_tokens(&self) -> usize {
        self.config.max_position_embeddings
    }

    /// The mean of the last layer's token vectors, L2-normalised.
    pub(crate) fn embed(&self, ids: &[u32]) -> Result<Vec<f32>, BertError> {
        let h = self.config.hidden_size;
        let t = ids.len();
        if t == 0 || t > self.max_tokens() {
            return Err(BertError::Length {
                tokens: t,
                max: self.max_tokens(),
            });
        }
        let vocab = self.word.len() / h;
        let mut x = vec![0.0f32; t * h];
        for (row, &id) in ids.iter().enumerate() {
            let id = id as usize;
            if id >= vocab {
                return Err(BertError::Token { id, vocab });
            }
            let out = &mut x[row * h..(row + 1) * h];
            let word = &self.word[id * h..(id + 1) * h];
            let position = &self.position[row * h..(row + 1) * h];
            // Every token is of segment 0 for a single sentence.
            let segment = &self.token_type[..h];
            for j in 0..h {
                out[j] = word[j] + position[j] + segment[j];
            }
        }
        let eps = self.config.layer_norm_eps;
        layer_norm(&mut x, &self.embedding_norm, eps);
        let mut scratch = Scratch::default();
        for layer in &self.layers {
            self.layer(layer, &mut x, t, &mut scratch);
        }
        let mut mean = vec![0.0f32; h];
        for row in x.chunks_exact(h) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        let norm = mean
            .iter()
            .map(|v| (v / t as f32).powi(2))
            .sum::<f32>()
            .sqrt()
            .max(1e-12);
        Ok(mean.iter().map(|v| v / t as f32 / norm).collect())
    }

    fn layer(&self, layer: &Layer, x: &mut [f32], t: usize, s: &mut Scratch) {
        let h = self.config.hidden_size;
        let heads = self.config.num_attention_heads;
        let d = h / heads;
        let eps = self.config.layer_norm_eps;
        linear(&layer.query, x, t, &mut s.q);
        linear(&layer.key, x, t, &mut s.k);
        linear(&layer.value, x, t, &mut s.v);
        s.context.clear();
        s.context.resize(t * h, 0.0);
        s.scores.resize(t * t, 0.0);
        let scale = 1.0 / (d as f32).sqrt();
        for head in 0..heads {
            let off = head * d;
            // scores = Q_h K_hᵀ / √d, over the head's columns of the [t, h] matrices.
            gemm(
                t,
                d,
                t,
                scale,
                (&s.q[off..], h as isize, 1),
                (&s.k[off..], 1, h as isize),
                0.0,
                (&mut s.scores, t as isize, 1),
            );
            for row in s.scores.chunks_exact_mut(t) {
                softmax(row);
            }
            gemm(
                t,
                t,
                d,
                1.0,
                (&s.scores, t as isize, 1),
                (&s.v[off..], h as isize, 1),
                0.0,
                (&mut s.context[off..], h as isize, 1),
            );
        }
        linear(&layer.attention_out, &s.context, t, &mut s.attended);
        for (a, r) in s.attended.iter_mut().zip(x.iter()) {
            *a += r;
        }
        layer_norm(&mut s.attended, &layer.attention_norm, eps);
        linear(&layer.intermediate, &s.attended, t, &mut s.inner);
        for v in s.inner.iter_mut() {
            *v = gelu_erf(*v);
        }
        linear(&layer.output, &s.inner, t, &mut s.out);
        for ((o, a), dst) in s.out.iter().zip(&s.attended).zip(x.iter_mut()) {
            *dst = o + a;
        }
        layer_norm(x, &layer.output_norm, eps);
    }
}

/// Buffers reused across the layers of one text.
#[derive(Default)]
struct Scratch {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    scores: Vec<f32>,
    context: Vec<f32>,
    attended: Vec<f32>,
    inner: Vec<f32>,
    out: Vec<f32>,
}

/// `out = x Wᵀ + b` for `rows` rows of `x`.
fn linear(l: &Linear, x: &[f32], rows: usize, out: &mut Vec<f32>) {
    out.clear();
    for _ in 0..rows {
        out.extend_from_slice(&l.bias);
    }
    gemm(
        rows,
        l.inputs,
        l.outputs,
        1.0,
        (x, l.inputs as isize, 1),
        // Wᵀ[i][o] = W[o][i]: read W column-wise.
        (&l.weight, 1, l.inputs as isize),
        1.0,
        (out, l.outputs as isize, 1),
    );
}

/// `c = alpha · a b + beta · c`, with `a` of `m × k` and `b` of `k × n`, each given as
/// (data, row stride, column stride).
#[allow(clippy::too_many_arguments)]
#[rustfmt::skip]
fn gemm(
    m: usize, k: usize, n: usize, alpha: f32,
    a: (&[f32], isize, isize),
    b: (&[f32], isize, isize),
    beta: f32, c: (&mut [f32], isize, isize),
) {
    let reach = |rows: usize, cols: usize, rs: isize, cs: isize| {
        if rows == 0 || cols == 0 { 0 } else { (rows - 1) * rs as usize + (cols - 1) * cs as usize + 1 }
    };
    // The kernel reads through raw pointers: every index it may touch must lie inside the slices.
    assert!(reach(m, k, a.1, a.2) <= a.0.len());
    assert!(reach(k, n, b.1, b.2) <= b.0.len());
    assert!(reach(m, n, c.1, c.2) <= c.0.len());
    // SAFETY: the asserts above bound every element the kernel addresses by the slices' lengths, the
    // strides are positive, and `c` is borrowed mutably so it aliases neither `a` nor `b`.
    #[allow(unsafe_code)]
    unsafe {
        matrixmultiply::sgemm(
            m, k, n, alpha,
            a.0.as_ptr(), a.1, a.2,
            b.0.as_ptr(), b.1, b.2,
            beta, c.0.as_mut_ptr(), c.1, c.2,
        );
    }
}

fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

fn layer_norm(x: &mut [f32], norm: &LayerNorm, eps: f32) {
    let h = norm.gamma.len();
    for row in x.chunks_exact_mut(h) {
        let mean = row.iter().sum::<f32>() / h as f32;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&norm.gamma).zip(&norm.beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// BERT's GELU, with the exact error function.
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x / std::f32::consts::SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_multiplies_through_strides() {
        // [1 2; 3 4] · [5 6; 7 8]ᵀ (b read column-wise) = [17 23; 39 53]
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0, 7.0, 8.0];
        let mut c = [0.0; 4];
        gemm(2, 2, 2, 1.0, (&a, 2, 1), (&b, 1, 2), 0.0, (&mut c, 2, 1));
        assert_eq!(c, [17.0, 23.0, 39.0, 53.0]);
    }

    #[test]
    fn softmax_and_layer_norm_are_normalised() {
        let mut row = [1.0, 2.0, 3.0];
        softmax(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row[2] > row[1] && row[1] > row[0]);
        let norm = LayerNorm {
            gamma: vec![1.0; 4],
            beta: vec![0.0; 4],
        };
        let mut x = [1.0, 2.0, 3.0, 4.0];
        layer_norm(&mut x, &norm, 1e-12);
        assert!(x.iter().sum::<f32>().abs() < 1e-5);
        assert!((x.iter().map(|v| v * v).sum::<f32>() / 4.0 - 1.0).abs() < 1e-4);
    }

    #[test]
    fn gelu_matches_known_values() {
        assert!((gelu_erf(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu_erf(-1.0) + 0.158_655_3).abs() < 1e-6);
        assert_eq!(gelu_erf(0.0), 0.0);
    }
}
