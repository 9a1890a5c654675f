-- PostgreSQL twin of ../sqlite/20261128000001_conversations_and_recordings.sql: the same tables, columns and constraints, in
-- PostgreSQL types (BIGINT, BYTEA, BOOLEAN; an identity `rowid` where rows are listed in
-- insertion order). Change both together.
-- The objects of SPEC §1 that a recording touches. Later steps add tables (API keys,
-- templates and configuration, chat messages, webhooks) in migrations of their own.
-- Times are Unix milliseconds; ids are prefixed random strings; secrets are stored hashed.

CREATE TABLE accounts (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE conversations (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    template_id   TEXT,
    topic         TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX conversations_by_account ON conversations (account_id, created_at_ms);

CREATE TABLE participants (
    rowid           BIGINT GENERATED ALWAYS AS IDENTITY,
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('ASSIGNED_AGENT', 'SECONDARY_AGENT', 'VISITOR')),
    token_hash      BYTEA NOT NULL UNIQUE,
    created_at_ms   BIGINT NOT NULL
);
CREATE INDEX participants_by_conversation ON participants (conversation_id);

-- Calls and collaboration layers.
CREATE TABLE interactions (
    rowid           BIGINT GENERATED ALWAYS AS IDENTITY,
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    source          TEXT NOT NULL CHECK (source IN ('CALL', 'COLLABORATION_LAYER')),
    type            TEXT NOT NULL CHECK (type IN ('AUDIO', 'AUDIO_VIDEO', 'SCREEN_SHARING')),
    started_at_ms   BIGINT NOT NULL,
    ended_at_ms     BIGINT
);
CREATE INDEX interactions_by_conversation ON interactions (conversation_id, started_at_ms);

-- One participant's media in one interaction (a WHIP session).
CREATE TABLE publications (
    id             TEXT PRIMARY KEY,
    interaction_id TEXT NOT NULL REFERENCES interactions (id) ON DELETE CASCADE,
    participant_id TEXT NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    audio          BOOLEAN NOT NULL,
    video          BOOLEAN NOT NULL,
    started_at_ms  BIGINT NOT NULL,
    ended_at_ms    BIGINT
);
CREATE INDEX publications_by_interaction ON publications (interaction_id);
CREATE INDEX publications_by_participant ON publications (participant_id);

CREATE TABLE recordings (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    recording_type  TEXT NOT NULL CHECK (recording_type IN ('AUDIO', 'AUDIO_VIDEO')),
    layout          TEXT NOT NULL CHECK (layout IN ('COMPOSED', 'RAW_TRACKS')),
    trigger         TEXT NOT NULL CHECK (trigger IN ('AUTOMATIC', 'MANUAL')),
    status          TEXT NOT NULL CHECK (status IN ('INITIALIZING', 'PENDING', 'COMPLETE')),
    started_at_ms   BIGINT,
    ended_at_ms     BIGINT,
    end_reason      TEXT CHECK (end_reason IN ('NORMAL', 'ABORT_SYSTEM', 'ABORT_TIMEOUT', 'ABORT_BLOBSTORE_FAILURE', 'ABORT_UNEXPECTED')),
    created_at_ms   BIGINT NOT NULL
);
CREATE INDEX recordings_by_conversation ON recordings (conversation_id, created_at_ms);
-- A conversation has many recordings, one after another, never two at once (SPEC §1).
CREATE UNIQUE INDEX one_running_recording_per_conversation ON recordings (conversation_id)
    WHERE ended_at_ms IS NULL;

-- The files of a recording (one composed file, or one per publication plus the manifest in raw
-- mode), with how much of each is durable in the spool.
CREATE TABLE recording_files (
    recording_id   TEXT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    file           BIGINT NOT NULL,
    publication_id TEXT REFERENCES publications (id) ON DELETE SET NULL,
    object_key     TEXT NOT NULL,
    durable_bytes  BIGINT NOT NULL DEFAULT 0,
    blocks         BIGINT NOT NULL DEFAULT 0,
    finished       BOOLEAN NOT NULL DEFAULT FALSE,
    started_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (recording_id, file)
);
CREATE INDEX recording_files_by_publication ON recording_files (publication_id);

-- Single-use, expiring entry points of recorders (SPEC §4).
CREATE TABLE entry_points (
    token_hash    BYTEA PRIMARY KEY,
    recording_id  TEXT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    attempt       BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_at_ms    BIGINT
);
CREATE INDEX entry_points_by_recording ON entry_points (recording_id);
