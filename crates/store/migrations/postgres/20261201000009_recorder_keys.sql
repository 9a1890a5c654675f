-- PostgreSQL twin of ../sqlite/20261201000009_recorder_keys.sql. Change both together.
-- Recorder keys (SPEC §2, conversation.recording.recordingApiKeyId): role RECORDER, no account.
-- A recorder key opens no part of the web API; it is the second credential recorders present
-- at their entry point when the server requires one.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
    CHECK (role IN ('ADMIN', 'GLOBAL_ADMIN', 'RECORDER'));
ALTER TABLE api_keys DROP CONSTRAINT api_keys_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_check CHECK ((role = 'ADMIN') = (account_id IS NOT NULL));
