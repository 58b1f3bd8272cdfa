//! PCM16 little-endian payloads (WebSocket media, AudioSocket, WAV data) to samples and back.

use crate::{AudioError, MAX_CHUNK_SAMPLES};

/// Decodes a PCM16 LE payload into `out` and returns the sample count.
/// Empty, odd-length and oversized payloads are errors: each means a broken or hostile sender.
pub fn pcm16le_decode_into(bytes: &[u8], out: &mut [i16]) -> Result<usize, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    if !bytes.len().is_multiple_of(2) {
        return Err(AudioError::OddLength { len: bytes.len() });
    }
    let samples = bytes.len() / 2;
    if samples > MAX_CHUNK_SAMPLES {
        return Err(AudioError::TooLarge {
            len: samples,
            max: MAX_CHUNK_SAMPLES,
        });
    }
    if out.len() < samples {
        return Err(AudioError::OutputTooSmall {
            needed: samples,
            got: out.len(),
        });
    }
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = i16::from_le_bytes([pair[0], pair[1]]);
    }
    Ok(samples)
}

/// Encodes samples as PCM16 LE into `out` (two bytes a sample) and returns the byte count.
pub fn pcm16le_encode_into(samples: &[i16], out: &mut [u8]) -> Result<usize, AudioError> {
    let needed = samples.len() * 2;
    if out.len() < needed {
        return Err(AudioError::OutputTooSmall {
            needed,
            got: out.len(),
        });
    }
    for (pair, s) in out.chunks_exact_mut(2).zip(samples) {
        pair.copy_from_slice(&s.to_le_bytes());
    }
    Ok(needed)
}

/// Sample to the [-1, 1) float range the models and DSP use.
#[inline]
pub fn to_f32(sample: i16) -> f32 {
    f32::from(sample) / 32_768.0
}

/// Float back to PCM16, saturating instead of wrapping.
#[inline]
pub fn to_i16(sample: f32) -> i16 {
    (sample * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn malformed_payloads_are_errors() {
        let mut out = [0i16; 8];
        assert_eq!(pcm16le_decode_into(&[], &mut out), Err(AudioError::Empty));
        assert_eq!(
            pcm16le_decode_into(&[1, 2, 3], &mut out),
            Err(AudioError::OddLength { len: 3 })
        );
        let huge = vec![0u8; (MAX_CHUNK_SAMPLES + 1) * 2];
        assert!(matches!(
            pcm16le_decode_into(&huge, &mut out),
            Err(AudioError::TooLarge { .. })
        ));
        assert!(matches!(
            pcm16le_decode_into(&[0; 32], &mut out),
            Err(AudioError::OutputTooSmall { .. })
        ));
    }

    #[test]
    fn float_conversion_saturates() {
        assert_eq!(to_i16(2.0), i16::MAX);
        assert_eq!(to_i16(-2.0), i16::MIN);
        assert_eq!(to_i16(to_f32(1234)), 1234);
    }

    proptest! {
        #[test]
        fn round_trip(samples in proptest::collection::vec(any::<i16>(), 1..2000)) {
            let mut bytes = vec![0u8; samples.len() * 2];
            pcm16le_encode_into(&samples, &mut bytes).unwrap();
            let mut back = vec![0i16; samples.len()];
            prop_assert_eq!(pcm16le_decode_into(&bytes, &mut back).unwrap(), samples.len());
            prop_assert_eq!(back, samples);
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let mut out = vec![0i16; 3000];
            let _ = pcm16le_decode_into(&bytes, &mut out);
        }
    }
}
