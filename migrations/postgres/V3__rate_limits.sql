-- What each replica admitted under each rate limit (src/limits/shared.rs):
-- one row per replica run and bucket key, whose `consumed` only grows.
-- Every `[limits] sync_interval` a replica adds what it admitted since its
-- last round, reads the other replicas' rows updated lately and debits
-- their growth from its own buckets. Rows not updated for an hour are
-- deleted. Keys are digests (the limit's code, then 16 bytes of SHA-256
-- of what it counts): no principal id, tool name or address is stored.

CREATE TABLE rate_limit_usage (
    -- One id per run of a replica (a new one at each start).
    replica  text        NOT NULL,
    key      bytea       NOT NULL,
    consumed bigint      NOT NULL CHECK (consumed >= 0),
    updated  timestamptz NOT NULL,
    PRIMARY KEY (replica, key)
);
CREATE INDEX rate_limit_usage_updated ON rate_limit_usage (updated);
