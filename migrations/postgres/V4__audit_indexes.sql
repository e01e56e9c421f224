-- Each index of audit_records is maintained by every call's commit (more
-- WAL to write and flush before the call runs), so the log keeps only the
-- indexes its queries read, as the SQLite store does (src/store/sqlite.rs):
-- no query reads by ts, and the kind index leaves out the two kinds every
-- call appends. Queries by another kind repeat the index's condition
-- (rare_kinds! in src/store/mod.rs) so that the planner can use it.
DROP INDEX audit_records_ts;
DROP INDEX audit_records_kind;
CREATE INDEX audit_records_rare_kind ON audit_records (kind, seq)
    WHERE kind NOT IN ('intent', 'outcome');
