-- What a call left behind: its claim (JSON text) and the post-call synthesis. One row per call.

CREATE TABLE call_summaries (
    call_id       TEXT PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    claim         TEXT NOT NULL,
    short_summary TEXT NOT NULL,
    long_summary  TEXT NOT NULL,
    satisfaction  BIGINT NOT NULL,
    improvement   TEXT NOT NULL,
    next_action   TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
