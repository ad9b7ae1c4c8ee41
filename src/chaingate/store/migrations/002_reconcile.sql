-- Balance reconciliation (watcher/reconcile.py): per deposit address, the native balance found
-- at the last check, what recorded deposits explain, and how much of a mismatch ops has already
-- been alerted about (so one discrepancy alerts once, and a further one alerts again).

CREATE TABLE reconcile_balances (
    address_id         bigint  NOT NULL REFERENCES deposit_addresses (id),
    asset              text    NOT NULL,
    network            text    NOT NULL,
    height             bigint  NOT NULL,          -- block of the last check
    block_hash         text,                      -- its hash (NULL: read by number)
    actual             numeric(78, 0) NOT NULL CHECK (actual >= 0),
    expected           numeric(78, 0) NOT NULL CHECK (expected >= 0),
    alerted_excess     numeric(78, 0) NOT NULL DEFAULT 0 CHECK (alerted_excess >= 0),
    alerted_shortfall  numeric(78, 0) NOT NULL DEFAULT 0 CHECK (alerted_shortfall >= 0),
    checked_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (address_id, asset)
);

-- Where the rotation through a network's deposit addresses stands (survives restarts, shared by
-- every instance).
CREATE TABLE reconcile_progress (
    network           text PRIMARY KEY,
    after_address_id  bigint NOT NULL DEFAULT 0,
    sweeps            bigint NOT NULL DEFAULT 0,  -- completed passes over all addresses
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- The expected balance sums deposits by recipient; without this index every round would scan
-- all of the network's deposits.
CREATE INDEX deposits_recipient ON deposits (network, to_key);
