-- Warden's store on PostgreSQL: the same tables as the embedded SQLite
-- store (src/store/sqlite.rs), plus the log's head row, which every
-- appending transaction locks so that replicas share one sequence.

CREATE TABLE audit_head (
    id       smallint PRIMARY KEY CHECK (id = 1),
    next_seq bigint   NOT NULL CHECK (next_seq >= 0)
);
INSERT INTO audit_head (id, next_seq) VALUES (1, 0);

CREATE TABLE audit_records (
    seq           bigint PRIMARY KEY,
    ts            text   NOT NULL,
    kind          text   NOT NULL,
    call_id       text,
    principal_oid text,
    tool          text,
    decision      text,
    leaf_hash     bytea  NOT NULL,
    record        bytea  NOT NULL,
    -- The process that appended the record (not part of the record's hash):
    -- which replica's interrupted calls a record belongs to.
    writer        text   NOT NULL
);
CREATE INDEX audit_records_call ON audit_records (call_id) WHERE call_id IS NOT NULL;
CREATE INDEX audit_records_ts ON audit_records (ts);
CREATE INDEX audit_records_kind ON audit_records (kind, seq);

CREATE TABLE audit_checkpoints (
    id       bigserial PRIMARY KEY,
    size     bigint NOT NULL,
    root     bytea  NOT NULL,
    frontier bytea  NOT NULL,
    note     text   NOT NULL,
    created  text   NOT NULL
);

CREATE TABLE risk_baselines (
    principal text  PRIMARY KEY,
    state     bytea NOT NULL,
    updated   text  NOT NULL
);

CREATE TABLE approval_facts (
    request_id text  PRIMARY KEY,
    facts      bytea NOT NULL,
    created    text  NOT NULL
);

CREATE TABLE state (
    ns      text  NOT NULL,
    key     text  NOT NULL,
    value   bytea NOT NULL,
    expires text,
    PRIMARY KEY (ns, key)
);

CREATE FUNCTION warden_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% are append-only', TG_ARGV[0];
END
$$;

CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION warden_append_only('audit records');
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION warden_append_only('audit records');
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION warden_append_only('audit records');
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION warden_append_only('audit checkpoints');
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION warden_append_only('audit checkpoints');
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION warden_append_only('audit checkpoints');
