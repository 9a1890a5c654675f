-- PostgreSQL twin of ../sqlite/20261128000003_templates.sql: the same tables, columns and constraints, in
-- PostgreSQL types (BIGINT, BYTEA, BOOLEAN; an identity `rowid` where rows are listed in
-- insertion order). Change both together.
-- Conversation templates (SPEC §1): named defaults for conversations, the TEMPLATE scope of the
-- configuration cascade. conversations.template_id refers to one (checked by the server: SQLite
-- cannot add a foreign key to an existing column; PostgreSQL keeps the same schema).
CREATE TABLE templates (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX templates_by_account ON templates (account_id);
