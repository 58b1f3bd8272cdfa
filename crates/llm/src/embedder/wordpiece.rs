//! BERT's WordPiece tokenizer, read from a Hugging Face `tokenizer.json`: the BERT normaliser (clean the
//! text, space out CJK characters, lowercase and strip accents), the BERT pre-tokeniser (split on white
//! space and on every punctuation character) and greedy longest-match WordPiece, framed by `[CLS]` and
//! `[SEP]`.
//!
//! Only what BERT sentence encoders use is read; a `tokenizer.json` of another kind (BPE, Unigram) is
//! refused rather than tokenised wrongly.

use std::collections::HashMap;

use serde::Deserialize;
use unicode_categories::UnicodeCategories;
use unicode_normalization::UnicodeNormalization;

/// A WordPiece vocabulary and the normalisation it was trained with.
#[derive(Debug)]
pub(crate) struct WordPiece {
    vocab: HashMap<String, u32>,
    unk: u32,
    cls: u32,
    sep: u32,
    prefix: String,
    max_word_chars: usize,
    lowercase: bool,
    strip_accents: bool,
    clean_text: bool,
    chinese_chars: bool,
}

#[derive(Deserialize)]
struct File {
    normalizer: Option<Normalizer>,
    model: Model,
}

#[derive(Deserialize)]
struct Normalizer {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "yes")]
    clean_text: bool,
    #[serde(default = "yes")]
    handle_chinese_chars: bool,
    strip_accents: Option<bool>,
    #[serde(default = "yes")]
    lowercase: bool,
}

#[derive(Deserialize)]
struct Model {
    #[serde(rename = "type")]
    kind: String,
    vocab: HashMap<String, u32>,
    unk_token: String,
    #[serde(default = "hashes")]
    continuing_subword_prefix: String,
    #[serde(default = "hundred")]
    max_input_chars_per_word: usize,
}

fn yes() -> bool {
    true
}

fn hashes() -> String {
    "##".to_owned()
}

fn hundred() -> usize {
    100
}

impl WordPiece {
    /// Reads a `tokenizer.json` whose model is WordPiece with a BERT normaliser (or none).
    pub(crate) fn from_json(text: &str) -> Result<Self, String> {
        let file: File = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if file.model.kind != "WordPiece" {
            return Err(format!(
                "the tokenizer is {}, not WordPiece",
                file.model.kind
            ));
        }
        let normalizer = match file.normalizer {
            Some(n) if n.kind == "BertNormalizer" => n,
            Some(n) => return Err(format!("unsupported normalizer {}", n.kind)),
            None => Normalizer {
                kind: String::new(),
                clean_text: false,
                handle_chinese_chars: false,
                strip_accents: Some(false),
                lowercase: false,
            },
        };
        let id = |token: &str| {
            file.model
                .vocab
                .get(token)
                .copied()
                .ok_or_else(|| format!("{token} is not in the vocabulary"))
        };
        Ok(Self {
            unk: id(&file.model.unk_token)?,
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            prefix: file.model.continuing_subword_prefix,
            max_word_chars: file.model.max_input_chars_per_word,
            lowercase: normalizer.lowercase,
            // As in BERT: unset means "strip when lowercasing".
            strip_accents: normalizer.strip_accents.unwrap_or(normalizer.lowercase),
            clean_text: normalizer.clean_text,
            chinese_chars: normalizer.handle_chinese_chars,
            vocab: file.model.vocab,
        })
    }

    /// Token ids of `text`, `[CLS]` first and `[SEP]` last, at most `max_len` in all (the words past
    /// that are cut, as the model was trained).
    pub(crate) fn encode(&self, text: &str, max_len: usize) -> Vec<u32> {
        let mut ids = vec![self.cls];
        let budget = max_len.saturating_sub(1);
        'words: for word in self.words(&self.normalize(text)) {
            for id in self.pieces(&word) {
                if ids.len() == budget {
                    break 'words;
                }
                ids.push(id);
            }
        }
        ids.push(self.sep);
        ids
    }

    fn normalize(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            if self.clean_text {
                if c == '\0' || c == '\u{fffd}' || is_control(c) {
                    continue;
                }
                if is_whitespace(c) {
                    out.push(' ');
                    continue;
                }
            }
            if self.chinese_chars && is_cjk(c) {
                out.push(' ');
                out.push(c);
                out.push(' ');
            } else {
                out.push(c);
            }
        }
        if self.strip_accents {
            out = out.nfd().filter(|c| !c.is_mark_nonspacing()).collect();
        }
        if self.lowercase {
            out = out.to_lowercase();
        }
        out
    }

    /// Splits on white space, and every punctuation character is a word of its own.
    fn words(&self, text: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut current = String::new();
        for c in text.chars() {
            if c.is_whitespace() {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            } else if c.is_ascii_punctuation() || c.is_punctuation() {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
                words.push(c.to_string());
            } else {
                current.push(c);
            }
        }
        if !current.is_empty() {
            words.push(current);
        }
        words
    }

    /// Greedy longest match from the left; a word with any part not in the vocabulary is one `[UNK]`.
    fn pieces(&self, word: &str) -> Vec<u32> {
        let chars: Vec<(usize, char)> = word.char_indices().collect();
        if chars.len() > self.max_word_chars {
            return vec![self.unk];
        }
        let mut ids = Vec::new();
        let mut start = 0;
        let mut candidate = String::new();
        while start < chars.len() {
            let mut end = chars.len();
            let mut found = None;
            while end > start {
                let from = chars[start].0;
                let to = chars.get(end).map_or(word.len(), |&(i, _)| i);
                candidate.clear();
                if start > 0 {
                    candidate.push_str(&self.prefix);
                }
                candidate.push_str(&word[from..to]);
                if let Some(&id) = self.vocab.get(&candidate) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            let Some(id) = found else {
                return vec![self.unk];
            };
            ids.push(id);
            start = end;
        }
        ids
    }
}

/// Control characters are dropped; tab, newline and carriage return count as white space instead.
fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && c.is_other()
}

fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// The CJK Unified Ideographs blocks, which BERT tokenises one character at a time.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B920..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> WordPiece {
        let vocab: Vec<&str> = vec![
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "wind", "##shield", "is", "cafe", ",", "!",
            "un", "##want", "##ed", "中",
        ];
        let vocab: HashMap<&str, usize> = vocab.into_iter().zip(0..).collect();
        let json = serde_json::json!({
            "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                           "strip_accents": null, "lowercase": true},
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100, "vocab": vocab},
        });
        WordPiece::from_json(&json.to_string()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn words_split_into_the_longest_pieces_from_the_left() {
        let t = tiny();
        assert_eq!(t.encode("The windshield", 16), vec![2, 4, 5, 6, 3]);
        assert_eq!(t.encode("unwanted!", 16), vec![2, 11, 12, 13, 10, 3]);
    }

    #[test]
    fn accents_case_punctuation_and_cjk_are_normalised_as_bert_was_trained() {
        let t = tiny();
        // "Café," -> "cafe" ","; 中 stands alone even inside a word; a control character is dropped.
        assert_eq!(t.encode("Café,\u{7}中is", 16), vec![2, 8, 9, 14, 7, 3]);
    }

    #[test]
    fn a_word_with_an_unknown_part_is_one_unknown_token() {
        let t = tiny();
        assert_eq!(t.encode("windowless the", 16), vec![2, 1, 4, 3]);
        assert_eq!(t.encode(&"a".repeat(101), 16), vec![2, 1, 3]);
    }

    #[test]
    fn long_text_is_cut_to_the_budget_with_the_frame_kept() {
        let t = tiny();
        let ids = t.encode(&"the ".repeat(50), 8);
        assert_eq!(ids.len(), 8);
        assert_eq!(ids.first(), Some(&2));
        assert_eq!(ids.last(), Some(&3));
        assert_eq!(t.encode("", 8), vec![2, 3]);
    }

    #[test]
    fn another_kind_of_tokenizer_is_refused() {
        let json = r#"{"model": {"type": "BPE", "vocab": {}, "unk_token": "<unk>"}}"#;
        let error = WordPiece::from_json(json).unwrap_err();
        assert!(error.contains("BPE"), "{error}");
    }
}
