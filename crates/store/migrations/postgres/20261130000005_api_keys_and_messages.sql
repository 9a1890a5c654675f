-- PostgreSQL twin of ../sqlite/20261130000005_api_keys_and_messages.sql: the same tables, columns and constraints, in
-- PostgreSQL types (BIGINT, BYTEA, BOOLEAN; an identity `rowid` where rows are listed in
-- insertion order). Change both together.
-- API keys (SPEC §1): an account's administrators (role ADMIN, with its account) or global
-- administrators (role GLOBAL_ADMIN, no account). The secret is shown once and stored hashed;
-- a revoked key stays listed (who had access, when) but no longer authenticates.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    account_id    TEXT REFERENCES accounts (id) ON DELETE CASCADE,
    role          TEXT NOT NULL CHECK (role IN ('ADMIN', 'GLOBAL_ADMIN')),
    name          TEXT NOT NULL,
    key_hash      BYTEA NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT,
    CHECK ((role = 'GLOBAL_ADMIN') = (account_id IS NULL))
);
CREATE INDEX api_keys_by_account ON api_keys (account_id, created_at_ms);

-- Chat messages of a conversation's history (SPEC §5): people's TEXT messages, and one
-- RECORDING_AVAILABLE message per completed recording, placed at the recording's end.
CREATE TABLE messages (
    rowid           BIGINT GENERATED ALWAYS AS IDENTITY,
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    type            TEXT NOT NULL CHECK (type IN ('TEXT', 'RECORDING_AVAILABLE')),
    sender_id       TEXT,
    sender_name     TEXT,
    text            TEXT,
    recording_id    TEXT REFERENCES recordings (id) ON DELETE CASCADE,
    at_ms           BIGINT NOT NULL,
    CHECK ((type = 'TEXT') = (text IS NOT NULL)),
    CHECK ((type = 'RECORDING_AVAILABLE') = (recording_id IS NOT NULL))
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, at_ms);
CREATE UNIQUE INDEX one_available_message_per_recording ON messages (recording_id)
    WHERE type = 'RECORDING_AVAILABLE';
