-- PostgreSQL twin of ../sqlite/20261128000004_webhooks.sql: the same tables, columns and constraints, in
-- PostgreSQL types (BIGINT, BYTEA, BOOLEAN; an identity `rowid` where rows are listed in
-- insertion order). Change both together.
-- Webhook registrations and the durable delivery queue (SPEC §5, Standard Webhooks): every
-- event becomes one message per registration that wants it; a dispatcher sends due messages,
-- logs every attempt, and retries with backoff until delivered or given up.
CREATE TABLE webhooks (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    endpoint      TEXT NOT NULL,
    secret        TEXT NOT NULL,
    events        TEXT NOT NULL, -- JSON array of event names
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX webhooks_by_account ON webhooks (account_id);

CREATE TABLE webhook_messages (
    id                 TEXT PRIMARY KEY, -- the webhook-id header, the same on every attempt
    webhook_id         TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_type         TEXT NOT NULL,
    payload            TEXT NOT NULL,
    created_at_ms      BIGINT NOT NULL,
    next_attempt_at_ms BIGINT NOT NULL,
    attempts           BIGINT NOT NULL DEFAULT 0,
    state              TEXT NOT NULL DEFAULT 'PENDING' CHECK (state IN ('PENDING', 'DELIVERED', 'FAILED'))
);
CREATE INDEX webhook_messages_due ON webhook_messages (state, next_attempt_at_ms);

CREATE TABLE webhook_attempts (
    message_id TEXT NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    attempt    BIGINT NOT NULL,
    at_ms      BIGINT NOT NULL,
    status     BIGINT,          -- the HTTP status, if an answer came
    error      TEXT,             -- what went wrong otherwise
    PRIMARY KEY (message_id, attempt)
);
