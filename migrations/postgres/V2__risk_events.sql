-- What replicas learn about principals, as a journal every replica applies
-- in `id` order (src/risk/shared.rs). Ids are handed out under the lock of
-- the head row, so they become visible in order: a replica that has
-- applied up to id N never later finds a committed event below N.

CREATE TABLE risk_head (
    id      smallint PRIMARY KEY CHECK (id = 1),
    next_id bigint   NOT NULL CHECK (next_id >= 0)
);
INSERT INTO risk_head (id, next_id) VALUES (1, 0);

CREATE TABLE risk_events (
    id    bigint PRIMARY KEY,
    -- Unix seconds of the call (events older than an hour are pruned once
    -- the baselines they changed are stored).
    at    bigint NOT NULL,
    event bytea  NOT NULL
);
CREATE INDEX risk_events_at ON risk_events (at);
