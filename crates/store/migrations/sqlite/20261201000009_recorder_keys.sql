-- Recorder keys (SPEC §2, conversation.recording.recordingApiKeyId): role RECORDER, no account.
-- A recorder key opens no part of the web API; it is the second credential recorders present
-- at their entry point when the server requires one. SQLite cannot change a CHECK constraint,
-- so the table is made again with the same rows.
CREATE TABLE api_keys_with_recorders (
    id            TEXT PRIMARY KEY,
    account_id    TEXT REFERENCES accounts (id) ON DELETE CASCADE,
    role          TEXT NOT NULL CHECK (role IN ('ADMIN', 'GLOBAL_ADMIN', 'RECORDER')),
    name          TEXT NOT NULL,
    key_hash      BLOB NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER,
    CHECK ((role = 'ADMIN') = (account_id IS NOT NULL))
);
INSERT INTO api_keys_with_recorders
    SELECT id, account_id, role, name, key_hash, created_at_ms, revoked_at_ms FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_with_recorders RENAME TO api_keys;
CREATE INDEX api_keys_by_account ON api_keys (account_id, created_at_ms);
