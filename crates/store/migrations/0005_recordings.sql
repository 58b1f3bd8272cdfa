-- Call recordings: both sides of a call as interleaved 16-bit PCM in chunks of about a second, each sealed
-- with DATA_KEY_FILE's key (a recording is never stored in the clear). Portable SQL: BYTEA is PostgreSQL's
-- binary type; SQLite stores the same bytes as a BLOB.

CREATE TABLE recording_chunks (
    call_id     TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    sample_rate BIGINT NOT NULL,
    data        BYTEA NOT NULL,
    PRIMARY KEY (call_id, seq)
);
