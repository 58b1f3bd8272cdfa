//! Whisper's vocabulary as raw bytes. CTranslate2's `vocabulary.txt` holds GPT-2 byte-level tokens (each byte
//! shown as a printable character, `Ġ` for a space); whisper.cpp wants the bytes themselves.

use std::collections::HashMap;

/// GPT-2's byte-to-character table, inverted: printable character -> byte.
fn char_to_byte() -> HashMap<char, u8> {
    let mut printable: Vec<u8> = (b'!'..=b'~')
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars: Vec<u32> = printable.iter().map(|&b| u32::from(b)).collect();
    let mut extra = 0;
    for b in 0..=255u8 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    printable
        .into_iter()
        .zip(chars)
        .filter_map(|(b, c)| char::from_u32(c).map(|c| (c, b)))
        .collect()
}

/// Decodes byte-level tokens to bytes; a token with a character outside the table is kept as UTF-8.
pub fn decode_tokens<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Vec<Vec<u8>> {
    let table = char_to_byte();
    tokens
        .into_iter()
        .map(|token| {
            token
                .chars()
                .map(|c| table.get(&c).copied().ok_or(c))
                .collect::<Result<Vec<u8>, char>>()
                .unwrap_or_else(|_| token.as_bytes().to_vec())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_tokens_become_bytes() {
        let out = decode_tokens(["Ġthe", "Hello", "Ċ", "Ã©"]);
        assert_eq!(out[0], b" the");
        assert_eq!(out[1], b"Hello");
        assert_eq!(out[2], b"\n");
        assert_eq!(out[3], "é".as_bytes());
    }
}
