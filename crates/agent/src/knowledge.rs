//! The company's documents as the agent searches them: split into passages of a few sentences, each with
//! a vector, searched by cosine similarity. Storage is elsewhere (the store crate keeps documents, chunks
//! and vectors); this is the chunking and the in-memory index the agent asks.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_llm::Embedder;

/// Characters a passage aims for; paragraphs are kept whole below this and split at sentence ends above.
const CHUNK_CHARS: usize = 600;
/// Characters repeated from the end of one passage at the start of the next, so a fact on a boundary is
/// found from either side.
const OVERLAP_CHARS: usize = 100;

/// One passage of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    /// The document it comes from (file name or title), for citing.
    pub document: String,
    /// Its position in the document, from 0.
    pub index: usize,
    /// The text.
    pub text: String,
}

/// A passage and how close it is to the query (cosine, −1 to 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The passage.
    pub passage: Passage,
    /// Similarity to the query.
    pub score: f32,
}

/// Something the agent can look things up in.
pub trait KnowledgeSearch: Send + Sync {
    /// The `k` passages closest to `query`, best first. Blocking (embeds the query).
    fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, KnowledgeError>;
}

/// Why the documents could not be searched, or a passage not added to them.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// The embedder failed on the query.
    #[error("the query could not be embedded: {0}")]
    Embedding(#[from] switchboard_llm::LlmError),
    /// The embedder answered without a vector.
    #[error("the embedder returned no vector for the query")]
    NoVector,
    /// A passage's vector was made by another embedder.
    #[error(
        "a vector of {got} dimensions does not fit {embedder} ({expected} dimensions): index the documents again with `switchboard kb add`"
    )]
    Dimensions {
        /// The vector's dimensions.
        got: usize,
        /// The index's embedder.
        embedder: String,
        /// Its dimensions.
        expected: usize,
    },
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A kind of file we do not index.
    #[error("{path}: only .txt, .md and .pdf files are indexed")]
    Unsupported {
        /// The file.
        path: String,
    },
    /// The PDF has no extractable text or is damaged.
    #[error("{path}: cannot extract text from the PDF: {detail}")]
    Pdf {
        /// The file.
        path: String,
        /// What the PDF reader said.
        detail: String,
    },
}

/// The text of a `.txt`, `.md` or `.pdf` file.
pub fn read_document(path: &std::path::Path) -> Result<String, DocumentError> {
    let shown = path.display().to_string();
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let bytes = std::fs::read(path).map_err(|source| DocumentError::Read {
        path: shown.clone(),
        source,
    })?;
    match extension.as_str() {
        "txt" | "md" | "markdown" => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        "pdf" => pdf_extract::extract_text_from_mem(&bytes).map_err(|e| DocumentError::Pdf {
            path: shown,
            detail: e.to_string(),
        }),
        _ => Err(DocumentError::Unsupported { path: shown }),
    }
}

/// Splits a document's text into passages: markdown headings start a new passage, paragraphs are
/// packed together up to the target size, long paragraphs are cut at sentence ends, and consecutive
/// passages overlap a little.
pub fn chunk_text(text: &str) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, pieces: &mut Vec<String>| {
        let trimmed = current.trim();
        if !trimmed.is_empty() {
            pieces.push(trimmed.to_owned());
        }
        current.clear();
    };
    for paragraph in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let paragraph = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
        if paragraph.starts_with('#') {
            flush(&mut current, &mut pieces);
        }
        for sentence in sentences(&paragraph) {
            if !current.is_empty() && current.len() + sentence.len() + 1 > CHUNK_CHARS {
                let tail = overlap_tail(&current);
                flush(&mut current, &mut pieces);
                current.push_str(&tail);
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(sentence);
        }
        current.push('\n');
    }
    flush(&mut current, &mut pieces);
    pieces
}

/// Sentences of a paragraph, split after `.`, `!` or `?` followed by a space.
fn sentences(paragraph: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = paragraph.as_bytes();
    for i in 0..bytes.len() {
        if matches!(bytes[i], b'.' | b'!' | b'?') && bytes.get(i + 1) == Some(&b' ') {
            out.push(paragraph[start..=i].trim());
            start = i + 1;
        }
    }
    if start < paragraph.len() {
        out.push(paragraph[start..].trim());
    }
    out.retain(|s| !s.is_empty());
    out
}

/// The last whole words of `text` within the overlap size.
fn overlap_tail(text: &str) -> String {
    let mut tail: Vec<&str> = Vec::new();
    let mut length = 0;
    for word in text.split_whitespace().rev() {
        if length + word.len() + 1 > OVERLAP_CHARS {
            break;
        }
        length += word.len() + 1;
        tail.push(word);
    }
    tail.reverse();
    tail.join(" ")
}

/// Passages and their unit vectors, searched by exhaustive cosine similarity (fast enough for tens of
/// thousands of passages; a database index takes over beyond that).
pub struct VectorIndex {
    embedder: Arc<dyn Embedder>,
    passages: Vec<Passage>,
    vectors: Vec<Vec<f32>>,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("embedder", &self.embedder.name())
            .field("passages", &self.passages.len())
            .finish()
    }
}

impl VectorIndex {
    /// An empty index whose queries `embedder` embeds.
    pub fn new(embedder: Arc<dyn Embedder>) -> Self {
        Self {
            embedder,
            passages: Vec::new(),
            vectors: Vec::new(),
        }
    }

    /// Adds a passage with its vector (made by the same embedder).
    pub fn insert(&mut self, passage: Passage, vector: Vec<f32>) -> Result<(), KnowledgeError> {
        if vector.len() != self.embedder.dimensions() {
            return Err(KnowledgeError::Dimensions {
                got: vector.len(),
                embedder: self.embedder.name().to_owned(),
                expected: self.embedder.dimensions(),
            });
        }
        self.passages.push(passage);
        self.vectors.push(vector);
        Ok(())
    }

    /// How many passages it holds.
    pub fn len(&self) -> usize {
        self.passages.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }
}

impl KnowledgeSearch for VectorIndex {
    fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, KnowledgeError> {
        if self.passages.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let query = self
            .embedder
            .embed(&[query])?
            .pop()
            .ok_or(KnowledgeError::NoVector)?;
        let mut scored: Vec<(f32, usize)> = self
            .vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (switchboard_llm::cosine(&query, v), i))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        Ok(scored
            .into_iter()
            .take(k)
            .map(|(score, i)| Hit {
                passage: self.passages[i].clone(),
                score,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_paragraphs_pack_and_headings_start_a_passage() {
        let text = "# Cover\n\nYour car is covered.\n\nGlass is included.\n\n# Claims\n\nCall us within 30 days.";
        let chunks = chunk_text(text);
        assert_eq!(chunks.len(), 2, "{chunks:?}");
        assert!(chunks[0].starts_with("# Cover") && chunks[0].contains("Glass is included."));
        assert!(chunks[1].starts_with("# Claims"));
    }

    #[test]
    fn long_text_is_cut_at_sentence_ends_with_overlap() {
        let sentence = "The deductible for collision damage is five hundred dollars per claim. ";
        let text = sentence.repeat(40);
        let chunks = chunk_text(&text);
        assert!(chunks.len() >= 4, "{}", chunks.len());
        for chunk in &chunks {
            assert!(
                chunk.len() <= CHUNK_CHARS + OVERLAP_CHARS + 2,
                "{}",
                chunk.len()
            );
            assert!(chunk.ends_with('.'), "{chunk}");
        }
        // The start of each later chunk repeats the end of the one before.
        let tail: String = chunks[0].split_whitespace().last().unwrap().to_owned();
        assert!(chunks[1].contains(&tail));
    }

    #[test]
    fn empty_text_has_no_passages() {
        assert!(chunk_text(" \n\n ").is_empty());
    }
}
