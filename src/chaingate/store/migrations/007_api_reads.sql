-- GET /v1/deposits pages newest first by id (keyset: id < cursor) under any combination of
-- filters; each filter gets an index that yields its rows in id order.
CREATE INDEX deposits_user_id ON deposits (user_id, id);
CREATE INDEX deposits_network_id ON deposits (network, id);
CREATE INDEX deposits_txid ON deposits (txid);

-- The address-index guard (chaingate/api/issuance.py): per network, a fingerprint of the
-- addresses its xpub derives (sha256 of the first two, never the xpub itself), recorded at the
-- first issue. A changed xpub is refused instead of mixed into the same index sequence.
CREATE TABLE xpub_fingerprints (
    network      text PRIMARY KEY,
    fingerprint  text NOT NULL,
    start_index  integer NOT NULL CHECK (start_index >= 0),  -- first index this database issued
    history_checked_to  integer,   -- addresses start_index..this-1 showed no on-chain history
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

-- GET /v1/networks reads what the watchers' processes publish here (the API process may run no
-- watchers): per network the best head its endpoint pool sees and each endpoint's health, as
-- written by the last instance that published (watcher/status.py). Cursor and leader come from
-- chain_cursor and leases.
CREATE TABLE network_status (
    network     text PRIMARY KEY,
    instance    text NOT NULL,                     -- the process that wrote this row
    head        bigint,                            -- best head of the healthy endpoints
    endpoints   jsonb NOT NULL DEFAULT '[]'::jsonb,  -- [{name, head, healthy, ...}], never URLs
    updated_at  timestamptz NOT NULL DEFAULT now()
);
