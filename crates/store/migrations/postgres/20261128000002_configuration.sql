-- PostgreSQL twin of ../sqlite/20261128000002_configuration.sql: the same tables, columns and constraints, in
-- PostgreSQL types (BIGINT, BYTEA, BOOLEAN; an identity `rowid` where rows are listed in
-- insertion order). Change both together.
-- Configuration properties set in a scope (SPEC §2): ACCOUNT (scope_id = account id) and, from
-- step 3, TEMPLATE (scope_id = template id). Values are JSON; a property not set here takes the
-- next scope's value or its built-in default.
CREATE TABLE configuration (
    scope    TEXT NOT NULL CHECK (scope IN ('ACCOUNT', 'TEMPLATE')),
    scope_id TEXT NOT NULL,
    property TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (scope, scope_id, property)
);
