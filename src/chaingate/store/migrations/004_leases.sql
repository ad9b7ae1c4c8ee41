-- Leadership as lease rows (store/leases.py), not session advisory locks: they work behind a
-- transaction-pooling proxy and on distributed PostgreSQL-compatible databases. ``epoch`` rises
-- by one at every change of holder (or re-acquisition after expiry) and never falls: it is the
-- fencing token each write transaction checks. A released lease keeps its row (and epoch).
CREATE TABLE leases (
    name         text PRIMARY KEY,          -- "watcher:<network>", "reconcile:<network>", ...
    holder       text NOT NULL,             -- instance id of the holder
    epoch        bigint NOT NULL,
    expires_at   timestamptz NOT NULL,      -- database clock
    acquired_at  timestamptz NOT NULL DEFAULT now()
);

-- The epoch of the leader that last moved the cursor: a cursor write compares and sets both
-- the height it read and this epoch (never lower than the one recorded).
ALTER TABLE chain_cursor ADD COLUMN epoch bigint NOT NULL DEFAULT 0;
