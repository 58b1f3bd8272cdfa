-- The knowledge base: documents, their passages, and each passage's embedding (little-endian f32s).
-- Portable SQL: BYTEA is PostgreSQL's binary type; SQLite stores the same bytes as a BLOB.

CREATE TABLE documents (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    source     TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    embedder   TEXT NOT NULL,
    chunks     BIGINT NOT NULL,
    added_at   BIGINT NOT NULL
);

CREATE UNIQUE INDEX documents_by_content ON documents (sha256, embedder);

CREATE TABLE chunks (
    document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    text        TEXT NOT NULL,
    embedding   BYTEA NOT NULL,
    PRIMARY KEY (document_id, seq)
);
