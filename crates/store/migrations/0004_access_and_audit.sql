-- API keys (only a hash of the secret part is kept), the audit log of every mutation, and what a call was
-- placed for (the API's `context`).

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE audit_log (
    id     TEXT PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT
);

CREATE INDEX audit_log_by_time ON audit_log (at);

ALTER TABLE calls ADD COLUMN context TEXT;
