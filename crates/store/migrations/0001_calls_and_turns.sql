-- Calls and their turns. Portable SQL: the same file runs on SQLite and PostgreSQL.
-- Times are Unix epoch milliseconds (BIGINT); ids are UUID text.

CREATE TABLE calls (
    id          TEXT PRIMARY KEY,
    direction   TEXT NOT NULL,
    status      TEXT NOT NULL,
    from_number TEXT,
    to_number   TEXT,
    started_at  BIGINT NOT NULL,
    ended_at    BIGINT,
    end_reason  TEXT
);

CREATE INDEX calls_by_start ON calls (started_at);

CREATE TABLE turns (
    call_id    TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    speaker    TEXT NOT NULL,
    text       TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at   BIGINT NOT NULL,
    PRIMARY KEY (call_id, seq)
);
