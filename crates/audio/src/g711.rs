//! G.711 µ-law and A-law, bit-exact with the ITU-T G.711 reference (the CCITT/Sun `g711.c` algorithm),
//! with 256-entry decode tables and branch-light encoders. Telephone audio arrives and leaves this way.

use crate::AudioError;

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32_635;

/// Encodes one linear PCM16 sample to µ-law.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    // Work on the 14-bit magnitude as the reference does: shift, bias, find the segment, take 4 bits.
    let mut pcm = i32::from(sample) >> 2;
    let mask: u8 = if pcm < 0 {
        pcm = -pcm;
        0x7F
    } else {
        0xFF
    };
    pcm = pcm.min(ULAW_CLIP >> 2) + (ULAW_BIAS >> 2);
    let segment = segment_of(pcm, &ULAW_SEGMENT_END);
    if segment >= 8 {
        return 0x7F ^ mask;
    }
    let code = ((segment as i32) << 4) | ((pcm >> (segment + 1)) & 0x0F);
    (code as u8) ^ mask
}

/// Decodes one µ-law byte to linear PCM16.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// Encodes one linear PCM16 sample to A-law.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3;
    let mask: u8 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let segment = segment_of(pcm, &ALAW_SEGMENT_END);
    if segment >= 8 {
        return 0x7F ^ mask;
    }
    let mut code = (segment as i32) << 4;
    code |= if segment < 2 {
        (pcm >> 1) & 0x0F
    } else {
        (pcm >> segment) & 0x0F
    };
    (code as u8) ^ mask
}

/// Decodes one A-law byte to linear PCM16.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

/// Decodes a µ-law payload into `out`, which must hold `codes.len()` samples.
pub fn ulaw_decode_into(codes: &[u8], out: &mut [i16]) -> Result<(), AudioError> {
    map_into(codes, out, ulaw_decode)
}

/// Decodes an A-law payload into `out`.
pub fn alaw_decode_into(codes: &[u8], out: &mut [i16]) -> Result<(), AudioError> {
    map_into(codes, out, alaw_decode)
}

/// Encodes PCM16 into µ-law codes.
pub fn ulaw_encode_into(samples: &[i16], out: &mut [u8]) -> Result<(), AudioError> {
    map_into(samples, out, ulaw_encode)
}

/// Encodes PCM16 into A-law codes.
pub fn alaw_encode_into(samples: &[i16], out: &mut [u8]) -> Result<(), AudioError> {
    map_into(samples, out, alaw_encode)
}

fn map_into<A: Copy, B>(input: &[A], out: &mut [B], f: impl Fn(A) -> B) -> Result<(), AudioError> {
    if out.len() < input.len() {
        return Err(AudioError::OutputTooSmall {
            needed: input.len(),
            got: out.len(),
        });
    }
    for (o, &i) in out.iter_mut().zip(input) {
        *o = f(i);
    }
    Ok(())
}

const ULAW_SEGMENT_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const ALAW_SEGMENT_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

#[inline]
fn segment_of(value: i32, ends: &[i32; 8]) -> usize {
    ends.iter().position(|&end| value <= end).unwrap_or(8)
}

const fn ulaw_decode_slow(code: u8) -> i16 {
    let u = !code;
    let mut t = (((u & 0x0F) as i32) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    (if u & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    }) as i16
}

const fn alaw_decode_slow(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let segment = ((a & 0x70) >> 4) as i32;
    match segment {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= segment - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

const ULAW_DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_decode_slow(i as u8);
        i += 1;
    }
    table
};

const ALAW_DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_decode_slow(i as u8);
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    // SHA-256 of the reference tables, computed with CPython's audioop (the CCITT/Sun g711.c code):
    // every PCM16 value from -32768 to 32767 encoded, and every code 0..=255 decoded (little-endian i16).
    const ULAW_ENCODE_SHA256: &str =
        "81d633c9e6972a18c74a58720b96cb8ca0bdd096d4060b646dd708c3b846019a";
    const ALAW_ENCODE_SHA256: &str =
        "38488f6fd710f4686360edc4d38639f96c491595ef93f8eb8d62d5e07ca6ce7b";
    const ULAW_DECODE_SHA256: &str =
        "3dab54339e520bb2c924826e3b72a917a2b612e9fd12fc867500f1d983a75827";
    const ALAW_DECODE_SHA256: &str =
        "e04788d110e58ff8c70c93b8480190d973e3b67876b6119abbaec766cc75c174";

    fn encode_table(f: fn(i16) -> u8) -> String {
        let bytes: Vec<u8> = (i16::MIN..=i16::MAX).map(f).collect();
        hex::encode(Sha256::digest(bytes))
    }

    fn decode_table(f: fn(u8) -> i16) -> String {
        let bytes: Vec<u8> = (0..=255u8).flat_map(|c| f(c).to_le_bytes()).collect();
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn bit_exact_with_the_reference_over_every_input() {
        assert_eq!(encode_table(ulaw_encode), ULAW_ENCODE_SHA256);
        assert_eq!(encode_table(alaw_encode), ALAW_ENCODE_SHA256);
        assert_eq!(decode_table(ulaw_decode), ULAW_DECODE_SHA256);
        assert_eq!(decode_table(alaw_decode), ALAW_DECODE_SHA256);
    }

    #[test]
    fn known_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7E);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_decode(0x00), -32_124);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-5000), 0x06);
        assert_eq!(alaw_decode(0xD5), 8);
    }

    #[test]
    fn every_code_survives_a_round_trip() {
        for code in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(code)), code);
            // µ-law has two zeros (0x7F is -0); both decode to 0, which encodes as +0.
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(ulaw_encode(ulaw_decode(code)), expected);
        }
    }

    #[test]
    fn short_outputs_are_errors_not_panics() {
        let mut out = [0i16; 2];
        assert_eq!(
            ulaw_decode_into(&[1, 2, 3], &mut out),
            Err(AudioError::OutputTooSmall { needed: 3, got: 2 })
        );
    }

    #[test]
    fn quantisation_error_is_bounded_by_the_segment_step() {
        // Every 16-bit input, not a sample of them: each segment doubles the step, so the error never exceeds
        // the largest step's half plus the reference's truncation (1024 µ-law and A-law), and for loud samples
        // it stays within a few per cent of the magnitude, the log companding G.711 promises. The worst case
        // is the first code of a segment (e.g. -1913 µ-law: 3.6 %), so the bound is 4 %.
        for sample in i16::MIN..=i16::MAX {
            let u = i32::from(ulaw_decode(ulaw_encode(sample))) - i32::from(sample);
            let a = i32::from(alaw_decode(alaw_encode(sample))) - i32::from(sample);
            assert!(u.abs() <= 1024, "µ-law error {u} at {sample}");
            assert!(a.abs() <= 1024, "A-law error {a} at {sample}");
            let magnitude = f64::from(sample).abs();
            if magnitude > 1024.0 && magnitude < 32_000.0 {
                assert!(
                    f64::from(u.abs()) <= 0.04 * magnitude,
                    "µ-law error {u} at {sample}"
                );
                assert!(
                    f64::from(a.abs()) <= 0.04 * magnitude,
                    "A-law error {a} at {sample}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn slices_match_sample_by_sample(samples in proptest::collection::vec(any::<i16>(), 0..400)) {
            let mut codes = vec![0u8; samples.len()];
            let mut back = vec![0i16; samples.len()];
            ulaw_encode_into(&samples, &mut codes).unwrap();
            ulaw_decode_into(&codes, &mut back).unwrap();
            for (s, b) in samples.iter().zip(&back) {
                prop_assert_eq!(*b, ulaw_decode(ulaw_encode(*s)));
            }
        }
    }
}
