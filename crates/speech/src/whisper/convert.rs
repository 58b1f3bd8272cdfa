//! Writes a CTranslate2 Whisper model as a whisper.cpp ggml file, so the shipped weights run on
//! whisper.cpp. Layout and tensor names follow whisper.cpp's loader: magic, hyper-parameters, mel
//! filterbank, vocabulary, then named tensors: f32 for vectors and position tables, f16 for the
//! convolutions, and the weight matrices in the [`WeightType`] asked for.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::ct2::{Ct2Model, DType, Tensor};
use super::{ConvertError, mel, vocab};

const GGML_MAGIC: u32 = 0x6767_6d6c;
/// whisper.cpp decides "multilingual", and with it the ids of every special token, from the vocabulary
/// size alone: 51,865 for multilingual models, 51,864 for English-only ones (whose `<|endoftext|>` is 50256,
/// not 50257). The size is therefore taken from the weights, never assumed; the byte-level tokens written
/// are those before `<|endoftext|>`.
const END_OF_TEXT: &str = "<|endoftext|>";

/// The shape of the model, read from the tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hparams {
    /// Vocabulary size: 51,865 multilingual, 51,864 English-only.
    pub n_vocab: usize,
    /// Encoder positions (1500 for 30 s).
    pub n_audio_ctx: usize,
    /// Width.
    pub n_state: usize,
    /// Encoder heads.
    pub n_audio_head: usize,
    /// Encoder layers.
    pub n_audio_layer: usize,
    /// Decoder positions (448).
    pub n_text_ctx: usize,
    /// Decoder heads.
    pub n_text_head: usize,
    /// Decoder layers.
    pub n_text_layer: usize,
}

fn count_layers(model: &Ct2Model, prefix: &str) -> usize {
    (0..)
        .take_while(|i| {
            model
                .tensors
                .contains_key(&format!("{prefix}/layer_{i}/ffn/linear_0/weight"))
        })
        .count()
}

impl Hparams {
    fn of(model: &Ct2Model) -> Result<Self, ConvertError> {
        let embed = model.tensor("decoder/embeddings/weight")?;
        Ok(Self {
            n_vocab: embed.dims[0],
            n_audio_ctx: model.tensor("encoder/position_encodings/encodings")?.dims[0],
            n_state: embed.dims[1],
            n_audio_head: model.scalar("encoder/num_heads")? as usize,
            n_audio_layer: count_layers(model, "encoder"),
            n_text_ctx: model.tensor("decoder/position_encodings/encodings")?.dims[0],
            n_text_head: model.scalar("decoder/num_heads")? as usize,
            n_text_layer: count_layers(model, "decoder"),
        })
    }
}

/// How the converted model stores its weight matrices (WHISPER_COMPUTE_TYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightType {
    /// Half precision, as the weights are shipped.
    F16,
    /// ggml's Q8_0: blocks of 32 weights as 8-bit integers with one f16 scale each. Half the size of
    /// f16 at the same word error rate; on the CPUs measured, not faster (tiny's matrices fit in cache).
    Q8_0,
}

impl WeightType {
    /// whisper.cpp's "ftype" header field: the type of its 2-D weights.
    fn file_type(self) -> i32 {
        match self {
            WeightType::F16 => 1,
            WeightType::Q8_0 => 7,
        }
    }
}

/// ggml's tensor type codes.
const GGML_F32: i32 = 0;
const GGML_F16: i32 = 1;
const GGML_Q8_0: i32 = 8;
/// Weights per Q8_0 block.
const Q8_0_BLOCK: usize = 32;

/// Converts `ct2_dir` (model.bin + vocabulary.txt) into a ggml file at `out` with its weight matrices in
/// `weights`. Returns the model's shape.
pub fn convert(ct2_dir: &Path, out: &Path, weights: WeightType) -> Result<Hparams, ConvertError> {
    let model = Ct2Model::read(&ct2_dir.join("model.bin"))?;
    if model.spec != "WhisperSpec" {
        return Err(ConvertError::Format(format!(
            "{} is a {}, not a Whisper model",
            ct2_dir.display(),
            model.spec
        )));
    }
    let vocab_path = ct2_dir.join("vocabulary.txt");
    let vocab_text = std::fs::read_to_string(&vocab_path)
        .map_err(|e| ConvertError::Io(vocab_path.display().to_string(), e))?;
    let tokens: Vec<&str> = vocab_text.lines().collect();
    let hp = Hparams::of(&model)?;
    let io = |e| ConvertError::Io(out.display().to_string(), e);
    let file = std::fs::File::create(out).map_err(io)?;
    let mut w = BufWriter::new(file);
    let put = |w: &mut BufWriter<std::fs::File>, v: i32| w.write_all(&v.to_le_bytes()).map_err(io);
    w.write_all(&GGML_MAGIC.to_le_bytes()).map_err(io)?;
    for v in [
        hp.n_vocab,
        hp.n_audio_ctx,
        hp.n_state,
        hp.n_audio_head,
        hp.n_audio_layer,
        hp.n_text_ctx,
        hp.n_state,
        hp.n_text_head,
        hp.n_text_layer,
        mel::N_MELS,
    ] {
        put(&mut w, v as i32)?;
    }
    put(&mut w, weights.file_type())?;
    put(&mut w, mel::N_MELS as i32)?;
    put(&mut w, mel::N_FFT_BINS as i32)?;
    for f in mel::filterbank() {
        w.write_all(&f.to_le_bytes()).map_err(io)?;
    }
    let text_tokens = tokens
        .iter()
        .position(|t| *t == END_OF_TEXT)
        .ok_or_else(|| {
            ConvertError::Format(format!("{} has no {END_OF_TEXT}", vocab_path.display()))
        })?;
    if tokens.len() != hp.n_vocab {
        return Err(ConvertError::Format(format!(
            "{} lists {} tokens but the model has {} embeddings",
            vocab_path.display(),
            tokens.len(),
            hp.n_vocab
        )));
    }
    put(&mut w, text_tokens as i32)?;
    for bytes in vocab::decode_tokens(tokens[..text_tokens].iter().copied()) {
        w.write_all(&(bytes.len() as u32).to_le_bytes())
            .map_err(io)?;
        w.write_all(&bytes).map_err(io)?;
    }

    let mut tensors = TensorWriter {
        w: &mut w,
        out,
        weights,
    };
    tensors.f32(
        "encoder.positional_embedding",
        model.tensor("encoder/position_encodings/encodings")?,
        None,
    )?;
    for conv in ["conv1", "conv2"] {
        tensors.convolution(
            &format!("encoder.{conv}.weight"),
            model.tensor(&format!("encoder/{conv}/weight"))?,
        )?;
        let bias = model.tensor(&format!("encoder/{conv}/bias"))?;
        tensors.f32(
            &format!("encoder.{conv}.bias"),
            bias,
            Some(vec![bias.dims[0], 1]),
        )?;
    }
    for i in 0..hp.n_audio_layer {
        let (src, dst) = (format!("encoder/layer_{i}"), format!("encoder.blocks.{i}"));
        tensors.self_attention(&model, &src, &dst)?;
        tensors.mlp(&model, &src, &dst)?;
    }
    tensors.norm(&model, "encoder/layer_norm", "encoder.ln_post")?;

    tensors.f32(
        "decoder.positional_embedding",
        model.tensor("decoder/position_encodings/encodings")?,
        None,
    )?;
    tensors.matrix(
        "decoder.token_embedding.weight",
        model.tensor("decoder/embeddings/weight")?,
    )?;
    for i in 0..hp.n_text_layer {
        let (src, dst) = (format!("decoder/layer_{i}"), format!("decoder.blocks.{i}"));
        tensors.self_attention(&model, &src, &dst)?;
        tensors.norm(
            &model,
            &format!("{src}/attention/layer_norm"),
            &format!("{dst}.cross_attn_ln"),
        )?;
        tensors.linear(
            &model,
            &format!("{src}/attention/linear_0"),
            &format!("{dst}.cross_attn.query"),
        )?;
        tensors.fused_kv(
            &model,
            &format!("{src}/attention/linear_1"),
            &format!("{dst}.cross_attn"),
        )?;
        tensors.linear(
            &model,
            &format!("{src}/attention/linear_2"),
            &format!("{dst}.cross_attn.out"),
        )?;
        tensors.mlp(&model, &src, &dst)?;
    }
    tensors.norm(&model, "decoder/layer_norm", "decoder.ln")?;
    w.flush().map_err(io)?;
    Ok(hp)
}

struct TensorWriter<'a, W: Write> {
    w: &'a mut W,
    out: &'a Path,
    weights: WeightType,
}

impl<W: Write> TensorWriter<'_, W> {
    fn header(&mut self, name: &str, dims: &[usize], ttype: i32) -> Result<(), ConvertError> {
        let io = |e| ConvertError::Io(self.out.display().to_string(), e);
        let mut head = Vec::with_capacity(12 + 4 * dims.len() + name.len());
        head.extend((dims.len() as i32).to_le_bytes());
        head.extend((name.len() as i32).to_le_bytes());
        head.extend(ttype.to_le_bytes());
        // ggml lists dimensions innermost first.
        for d in dims.iter().rev() {
            head.extend((*d as i32).to_le_bytes());
        }
        head.extend(name.as_bytes());
        self.w.write_all(&head).map_err(io)
    }

    fn f32(
        &mut self,
        name: &str,
        t: &Tensor,
        dims: Option<Vec<usize>>,
    ) -> Result<(), ConvertError> {
        let values = t.to_f32()?;
        self.header(name, &dims.unwrap_or_else(|| t.dims.clone()), GGML_F32)?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.write(&bytes)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ConvertError> {
        self.w
            .write_all(bytes)
            .map_err(|e| ConvertError::Io(self.out.display().to_string(), e))
    }

    /// Rows `rows` of a weight matrix (outermost dimension), stored as the conversion's weight type.
    fn matrix_rows(
        &mut self,
        name: &str,
        t: &Tensor,
        rows: std::ops::Range<usize>,
    ) -> Result<(), ConvertError> {
        if t.dtype != DType::F16 {
            return Err(ConvertError::Format(format!(
                "{name}: expected f16 weights, found {:?}",
                t.dtype
            )));
        }
        let row_len = t.len() / t.dims[0];
        let mut dims = t.dims.clone();
        dims[0] = rows.len();
        let shipped = &t.data[rows.start * row_len * 2..rows.end * row_len * 2];
        match self.weights {
            WeightType::F16 => {
                self.header(name, &dims, GGML_F16)?;
                self.write(shipped)
            }
            WeightType::Q8_0 => {
                if !row_len.is_multiple_of(Q8_0_BLOCK) {
                    return Err(ConvertError::Format(format!(
                        "{name}: rows of {row_len} weights do not split into Q8_0 blocks of {Q8_0_BLOCK}"
                    )));
                }
                self.header(name, &dims, GGML_Q8_0)?;
                let values: Vec<f32> = shipped
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect();
                self.write(&quantize_q8_0(&values))
            }
        }
    }

    fn matrix(&mut self, name: &str, t: &Tensor) -> Result<(), ConvertError> {
        self.matrix_rows(name, t, 0..t.dims[0])
    }

    /// A convolution kernel: whisper.cpp takes these in f16 whatever the matrices' type.
    fn convolution(&mut self, name: &str, t: &Tensor) -> Result<(), ConvertError> {
        if t.dtype != DType::F16 {
            return Err(ConvertError::Format(format!(
                "{name}: expected f16 weights, found {:?}",
                t.dtype
            )));
        }
        self.header(name, &t.dims, GGML_F16)?;
        self.write(&t.data)
    }

    fn f32_slice(
        &mut self,
        name: &str,
        t: &Tensor,
        range: std::ops::Range<usize>,
    ) -> Result<(), ConvertError> {
        let values = t.to_f32()?;
        self.header(name, &[range.len()], GGML_F32)?;
        let bytes: Vec<u8> = values[range].iter().flat_map(|v| v.to_le_bytes()).collect();
        self.write(&bytes)
    }

    fn norm(&mut self, m: &Ct2Model, src: &str, dst: &str) -> Result<(), ConvertError> {
        self.f32(
            &format!("{dst}.weight"),
            m.tensor(&format!("{src}/gamma"))?,
            None,
        )?;
        self.f32(
            &format!("{dst}.bias"),
            m.tensor(&format!("{src}/beta"))?,
            None,
        )
    }

    fn linear(&mut self, m: &Ct2Model, src: &str, dst: &str) -> Result<(), ConvertError> {
        self.matrix(
            &format!("{dst}.weight"),
            m.tensor(&format!("{src}/weight"))?,
        )?;
        self.f32(
            &format!("{dst}.bias"),
            m.tensor(&format!("{src}/bias"))?,
            None,
        )
    }

    /// A block's self-attention: its layer norm, the fused query/key/value, the output projection.
    fn self_attention(&mut self, m: &Ct2Model, src: &str, dst: &str) -> Result<(), ConvertError> {
        self.norm(
            m,
            &format!("{src}/self_attention/layer_norm"),
            &format!("{dst}.attn_ln"),
        )?;
        self.fused_qkv(
            m,
            &format!("{src}/self_attention/linear_0"),
            &format!("{dst}.attn"),
        )?;
        self.linear(
            m,
            &format!("{src}/self_attention/linear_1"),
            &format!("{dst}.attn.out"),
        )
    }

    fn mlp(&mut self, m: &Ct2Model, src: &str, dst: &str) -> Result<(), ConvertError> {
        self.norm(
            m,
            &format!("{src}/ffn/layer_norm"),
            &format!("{dst}.mlp_ln"),
        )?;
        self.linear(m, &format!("{src}/ffn/linear_0"), &format!("{dst}.mlp.0"))?;
        self.linear(m, &format!("{src}/ffn/linear_1"), &format!("{dst}.mlp.2"))
    }

    /// CTranslate2 fuses query, key and value; Whisper's key has no bias (CTranslate2 stores zeros).
    fn fused_qkv(&mut self, m: &Ct2Model, src: &str, dst: &str) -> Result<(), ConvertError> {
        let w = m.tensor(&format!("{src}/weight"))?;
        let b = m.tensor(&format!("{src}/bias"))?;
        let d = w.dims[0] / 3;
        self.matrix_rows(&format!("{dst}.query.weight"), w, 0..d)?;
        self.f32_slice(&format!("{dst}.query.bias"), b, 0..d)?;
        self.matrix_rows(&format!("{dst}.key.weight"), w, d..2 * d)?;
        self.matrix_rows(&format!("{dst}.value.weight"), w, 2 * d..3 * d)?;
        self.f32_slice(&format!("{dst}.value.bias"), b, 2 * d..3 * d)
    }

    /// Cross-attention fuses key and value.
    fn fused_kv(&mut self, m: &Ct2Model, src: &str, dst: &str) -> Result<(), ConvertError> {
        let w = m.tensor(&format!("{src}/weight"))?;
        let b = m.tensor(&format!("{src}/bias"))?;
        let d = w.dims[0] / 2;
        self.matrix_rows(&format!("{dst}.key.weight"), w, 0..d)?;
        self.matrix_rows(&format!("{dst}.value.weight"), w, d..2 * d)?;
        self.f32_slice(&format!("{dst}.value.bias"), b, d..2 * d)
    }
}

/// ggml's Q8_0 layout, block by block: the scale (largest magnitude ÷ 127) as f16, then the 32 weights
/// divided by it and rounded. `values.len()` is a multiple of the block.
fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / Q8_0_BLOCK * (2 + Q8_0_BLOCK));
    for block in values.chunks_exact(Q8_0_BLOCK) {
        let largest = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = largest / 127.0;
        let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        out.extend(half::f16::from_f32(scale).to_le_bytes());
        // Within ±127 by construction; `as` saturates anyway.
        out.extend(block.iter().map(|v| (v * inverse).round() as i8 as u8));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_blocks_hold_the_scale_and_the_rounded_weights() {
        let mut values: Vec<f32> = (0..32).map(|i| i as f32 / 31.0 - 0.5).collect();
        values[7] = -1.27; // the largest magnitude: scale 0.01
        values.extend([0.0; 32]); // an all-zero block: scale 0, weights 0
        let bytes = quantize_q8_0(&values);
        assert_eq!(bytes.len(), 2 * 34);
        let scale = half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32();
        assert!((scale - 0.01).abs() < 1e-5, "{scale}");
        let weights: Vec<i8> = bytes[2..34].iter().map(|&b| b as i8).collect();
        assert_eq!(weights[7], -127);
        for (q, v) in weights.iter().zip(&values) {
            assert!(
                (f32::from(*q) * scale - v).abs() <= scale / 2.0 + 1e-4,
                "{q} vs {v}"
            );
        }
        assert!(bytes[34..].iter().all(|&b| b == 0));
    }
}
