-- Encryption at rest (issue 9): the key a file was sealed for (hex SHA-256 of its public key's
-- SubjectPublicKeyInfo); NULL for a file stored as recorded.
ALTER TABLE recording_files ADD COLUMN encryption_key_id TEXT;
