-- The server nodes sharing this database. A node holds a lease that it renews every few seconds;
-- a node whose lease ran out is taken for dead: another node ends its calls and layers and
-- finishes its recordings. Taking over bumps the epoch, so the dead node, should it wake, finds
-- its lease gone and stops instead of carrying on beside its successor.
CREATE TABLE nodes (
    node_id             TEXT PRIMARY KEY,
    url                 TEXT NOT NULL,      -- where the other nodes reach its API
    epoch               BIGINT NOT NULL,    -- bumped at each start and each takeover
    lease_expires_at_ms BIGINT NOT NULL,
    started_at_ms       BIGINT NOT NULL
);

-- The node whose memory and SFU hold a conversation's live state (calls, layers, media, its
-- recording); requests for the conversation are forwarded to it. NULL: none yet.
ALTER TABLE conversations ADD COLUMN host_node TEXT;
CREATE INDEX conversations_by_host ON conversations (host_node);

-- The node that runs a recording (or finishes it). NULL: made before nodes existed.
ALTER TABLE recordings ADD COLUMN node_id TEXT;

-- Parts end on block boundaries (so that the parts stored so far make a playable file): each
-- part's end offset in the file is kept. Parts stored before were all part_size long.
ALTER TABLE file_upload_parts ADD COLUMN end_offset BIGINT;
UPDATE file_upload_parts SET end_offset = (part + 1) * (
    SELECT part_size FROM file_uploads u
    WHERE u.recording_id = file_upload_parts.recording_id AND u.file = file_upload_parts.file);

-- Secrets every node must share (the key download links are signed with), hex-encoded: the
-- first node to start puts its own in; every node then uses the one kept here.
CREATE TABLE shared_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
