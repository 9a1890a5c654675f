-- Which node claimed a webhook message for delivery: a node that restarts frees its own claims
-- at once instead of waiting for their lease to end.
ALTER TABLE webhook_messages ADD COLUMN claimed_by TEXT;

-- Multipart uploads of recording files into the object store, streamed from the spool while
-- the recording runs. A row lives from the upload's creation until the object is complete (or
-- the upload aborted): after a crash, the node that owns it resumes it from here. No foreign
-- key: a row must outlive its recording until the upload is aborted in the store.
CREATE TABLE file_uploads (
    recording_id  TEXT NOT NULL,
    file          BIGINT NOT NULL,
    node_id       TEXT NOT NULL,        -- the node whose spool holds the file
    object_key    TEXT NOT NULL,
    upload_id     TEXT NOT NULL,        -- the store's multipart upload id
    part_size     BIGINT NOT NULL,        -- every part but the last is this long
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (recording_id, file)
);
CREATE INDEX file_uploads_by_node ON file_uploads (node_id);

-- The parts stored so far: part n holds bytes [n × part_size, (n + 1) × part_size) of the file.
CREATE TABLE file_upload_parts (
    recording_id TEXT NOT NULL,
    file         BIGINT NOT NULL,
    part         BIGINT NOT NULL,
    content_id   TEXT NOT NULL,         -- what the store answered (the ETag in S3)
    PRIMARY KEY (recording_id, file, part),
    FOREIGN KEY (recording_id, file) REFERENCES file_uploads (recording_id, file) ON DELETE CASCADE
);
