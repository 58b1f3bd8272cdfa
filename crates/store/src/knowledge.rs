//! The knowledge base's documents and passages with their embeddings. A document is identified by its
//! content and the embedder that indexed it, so adding the same file twice is a no-op and changing the
//! embedding model re-indexes.

use std::time::SystemTime;

use sqlx::Row;

use crate::calls::{column, corrupt, millis, time};
use crate::{Database, StoreError};

/// A document to store.
#[derive(Debug, Clone)]
pub struct NewDocument {
    /// Id (UUID text).
    pub id: String,
    /// Display name (file name), cited in answers.
    pub name: String,
    /// Where it came from (path).
    pub source: String,
    /// SHA-256 of its content, hex.
    pub sha256: String,
    /// The embedder that made the vectors.
    pub embedder: String,
}

/// A stored document.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRecord {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Origin.
    pub source: String,
    /// Embedder.
    pub embedder: String,
    /// Passages.
    pub chunks: i64,
    /// When it was added.
    pub added_at: SystemTime,
}

/// A stored passage with its vector.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRecord {
    /// The document's display name.
    pub document: String,
    /// Position in the document.
    pub seq: i64,
    /// Text.
    pub text: String,
    /// Embedding.
    pub embedding: Vec<f32>,
}

impl Database {
    /// Whether this content is already indexed by this embedder.
    pub async fn has_document(&self, sha256: &str, embedder: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM documents WHERE sha256 = $1 AND embedder = $2")
            .bind(sha256.to_owned())
            .bind(embedder.to_owned())
            .fetch_one(self.pool())
            .await
            .map_err(StoreError::query("looking up a document"))?;
        Ok(column::<i64>(&row, 0, "looking up a document")? > 0)
    }

    /// Stores a document and all its passages in one transaction: a document is there whole or not at all.
    pub async fn insert_document(
        &self,
        document: &NewDocument,
        chunks: &[(String, Vec<f32>)],
    ) -> Result<(), StoreError> {
        const OP: &str = "storing a document";
        let mut tx = self.pool().begin().await.map_err(StoreError::query(OP))?;
        sqlx::query(
            "INSERT INTO documents (id, name, source, sha256, embedder, chunks, added_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(document.id.clone())
        .bind(document.name.clone())
        .bind(document.source.clone())
        .bind(document.sha256.clone())
        .bind(document.embedder.clone())
        .bind(i64::try_from(chunks.len()).unwrap_or(i64::MAX))
        .bind(millis(SystemTime::now()))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(OP))?;
        for (seq, (text, vector)) in chunks.iter().enumerate() {
            sqlx::query(
                "INSERT INTO chunks (document_id, seq, text, embedding) VALUES ($1, $2, $3, $4)",
            )
            .bind(document.id.clone())
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .bind(text.clone())
            .bind(encode(vector))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(OP))?;
        }
        tx.commit().await.map_err(StoreError::query(OP))
    }

    /// Every document, newest first.
    pub async fn documents(&self) -> Result<Vec<DocumentRecord>, StoreError> {
        const OP: &str = "listing documents";
        let rows = sqlx::query(
            "SELECT id, name, source, embedder, chunks, added_at FROM documents ORDER BY added_at DESC",
        )
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query(OP))?;
        rows.iter()
            .map(|r| {
                Ok(DocumentRecord {
                    id: column(r, 0, OP)?,
                    name: column(r, 1, OP)?,
                    source: column(r, 2, OP)?,
                    embedder: column(r, 3, OP)?,
                    chunks: column(r, 4, OP)?,
                    added_at: time(column(r, 5, OP)?),
                })
            })
            .collect()
    }

    /// Every passage indexed by `embedder`, with its vector, for the in-memory index.
    pub async fn knowledge_chunks(&self, embedder: &str) -> Result<Vec<ChunkRecord>, StoreError> {
        const OP: &str = "reading the knowledge base";
        let rows = sqlx::query(
            "SELECT d.name, c.seq, c.text, c.embedding FROM chunks c JOIN documents d ON d.id = c.document_id \
             WHERE d.embedder = $1 ORDER BY d.added_at, c.seq",
        )
        .bind(embedder.to_owned())
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query(OP))?;
        rows.iter()
            .map(|r| {
                let bytes: Vec<u8> = r.try_get(3).map_err(StoreError::query(OP))?;
                Ok(ChunkRecord {
                    document: column(r, 0, OP)?,
                    seq: column(r, 1, OP)?,
                    text: column(r, 2, OP)?,
                    embedding: decode(&bytes)?,
                })
            })
            .collect()
    }
}

fn encode(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn decode(bytes: &[u8]) -> Result<Vec<f32>, StoreError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(corrupt(
            "embedding",
            format!("{} bytes is not a whole number of f32s", bytes.len()),
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_through_bytes() {
        let v = vec![0.5_f32, -1.25, 3.0e-7];
        assert_eq!(decode(&encode(&v)).unwrap(), v);
        assert!(decode(&[1, 2, 3]).is_err());
    }
}
