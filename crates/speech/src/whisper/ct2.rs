//! Reads a CTranslate2 `model.bin`: a version header, the model spec's name, then named tensors (rank,
//! dims, dtype, bytes) and aliases. Format as written by CTranslate2's `model_spec.py` (binary version 6).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use super::ConvertError;

/// Element types CTranslate2 stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// IEEE 754 single precision.
    F32,
    /// 8-bit signed integers.
    I8,
    /// 16-bit signed integers.
    I16,
    /// 32-bit signed integers.
    I32,
    /// IEEE 754 half precision.
    F16,
    /// bfloat16.
    BF16,
}

impl DType {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// One stored tensor.
#[derive(Debug, Clone)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub dims: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// Raw little-endian bytes.
    pub data: Vec<u8>,
}

impl Tensor {
    /// Elements.
    pub fn len(&self) -> usize {
        self.dims.iter().product::<usize>().max(1)
    }

    /// Whether it holds no elements.
    pub fn is_empty(&self) -> bool {
        self.dims.contains(&0)
    }

    /// The values as f32 (from f32 or f16).
    pub fn to_f32(&self) -> Result<Vec<f32>, ConvertError> {
        match self.dtype {
            DType::F32 => Ok(self
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()),
            DType::F16 => Ok(self
                .data
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect()),
            other => Err(ConvertError::Format(format!(
                "expected floating-point weights, found {other:?}"
            ))),
        }
    }
}

/// A CTranslate2 model: its spec name and tensors by name (aliases resolved).
#[derive(Debug)]
pub struct Ct2Model {
    /// `WhisperSpec`, ...
    pub spec: String,
    /// Tensors by name.
    pub tensors: HashMap<String, Tensor>,
}

impl Ct2Model {
    /// Reads `model.bin`.
    pub fn read(path: &Path) -> Result<Self, ConvertError> {
        let bytes =
            std::fs::read(path).map_err(|e| ConvertError::Io(path.display().to_string(), e))?;
        Self::parse(&bytes)
    }

    /// Parses the bytes of a `model.bin`.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConvertError> {
        let mut r = bytes;
        let version = read_u32(&mut r)?;
        if !(2..=6).contains(&version) {
            return Err(ConvertError::Format(format!(
                "unsupported CTranslate2 binary version {version}"
            )));
        }
        let spec = read_string(&mut r)?;
        let _revision = read_u32(&mut r)?;
        let count = read_u32(&mut r)? as usize;
        let mut tensors = HashMap::with_capacity(count);
        for _ in 0..count {
            let name = read_string(&mut r)?;
            let rank = read_u8(&mut r)? as usize;
            let dims = (0..rank)
                .map(|_| read_u32(&mut r).map(|d| d as usize))
                .collect::<Result<Vec<_>, _>>()?;
            let code = read_u8(&mut r)?;
            let dtype = DType::from_code(code)
                .ok_or_else(|| ConvertError::Format(format!("{name}: unknown dtype {code}")))?;
            let nbytes = read_u32(&mut r)? as usize;
            let expected = dims.iter().product::<usize>().max(1) * dtype.size();
            if nbytes != expected || nbytes > r.len() {
                return Err(ConvertError::Format(format!(
                    "{name}: {nbytes} bytes for dims {dims:?} {dtype:?}"
                )));
            }
            let (data, rest) = r.split_at(nbytes);
            r = rest;
            tensors.insert(
                name,
                Tensor {
                    dims,
                    dtype,
                    data: data.to_vec(),
                },
            );
        }
        let aliases = read_u32(&mut r)?;
        for _ in 0..aliases {
            let alias = read_string(&mut r)?;
            let target = read_string(&mut r)?;
            if let Some(t) = tensors.get(&target).cloned() {
                tensors.insert(alias, t);
            }
        }
        Ok(Self { spec, tensors })
    }

    /// The tensor called `name`, or an error naming it.
    pub fn tensor(&self, name: &str) -> Result<&Tensor, ConvertError> {
        self.tensors
            .get(name)
            .ok_or_else(|| ConvertError::Format(format!("missing tensor {name}")))
    }

    /// A scalar integer setting stored as a tensor (`encoder/num_heads`).
    pub fn scalar(&self, name: &str) -> Result<i64, ConvertError> {
        let t = self.tensor(name)?;
        let b = &t.data;
        Ok(match t.dtype {
            DType::I8 => i64::from(b[0] as i8),
            DType::I16 => i64::from(i16::from_le_bytes([b[0], b[1]])),
            DType::I32 => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            other => {
                return Err(ConvertError::Format(format!(
                    "{name}: expected an integer, found {other:?}"
                )));
            }
        })
    }
}

fn read_u8(r: &mut &[u8]) -> Result<u8, ConvertError> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)
        .map_err(|_| ConvertError::Format("truncated file".into()))?;
    Ok(b[0])
}

fn read_u16(r: &mut &[u8]) -> Result<u16, ConvertError> {
    let mut b = [0u8; 2];
    r.read_exact(&mut b)
        .map_err(|_| ConvertError::Format("truncated file".into()))?;
    Ok(u16::from_le_bytes(b))
}

fn read_u32(r: &mut &[u8]) -> Result<u32, ConvertError> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)
        .map_err(|_| ConvertError::Format("truncated file".into()))?;
    Ok(u32::from_le_bytes(b))
}

/// A u16 length (counting the trailing NUL), then the bytes.
fn read_string(r: &mut &[u8]) -> Result<String, ConvertError> {
    let len = read_u16(r)? as usize;
    if len > r.len() {
        return Err(ConvertError::Format("truncated string".into()));
    }
    let (s, rest) = r.split_at(len);
    *r = rest;
    Ok(String::from_utf8_lossy(s).trim_end_matches('\0').to_owned())
}

/// IEEE half to single precision.
pub fn f16_to_f32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_values() {
        assert_eq!(f16_to_f32(0x3C00), 1.0);
        assert_eq!(f16_to_f32(0xC000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert!(f16_to_f32(0x7C00).is_infinite());
    }

    #[test]
    fn truncated_and_garbage_files_are_errors() {
        assert!(Ct2Model::parse(&[]).is_err());
        assert!(Ct2Model::parse(&[6, 0, 0, 0, 200, 0]).is_err());
        assert!(Ct2Model::parse(&[99, 0, 0, 0]).is_err());
    }
}
