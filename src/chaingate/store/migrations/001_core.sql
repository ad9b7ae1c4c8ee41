-- Core schema: watcher progress, deposit addresses, deposits, ledger outbox, alerts, audit log.
-- Amounts are NUMERIC(78,0): integer base units up to 2^256, never floating point.

CREATE TABLE chain_cursor (
    network     text PRIMARY KEY,
    height      bigint NOT NULL,            -- last block fully processed
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Recent canonical block hashes per network: reorgs are found by hash, not by height.
CREATE TABLE block_hashes (
    network      text   NOT NULL,
    number       bigint NOT NULL,
    hash         text   NOT NULL,
    parent_hash  text   NOT NULL,
    PRIMARY KEY (network, number)
);

CREATE TABLE address_counters (
    network     text PRIMARY KEY,
    next_index  integer NOT NULL DEFAULT 0 CHECK (next_index >= 0)
);

CREATE TABLE deposit_addresses (
    id                bigserial PRIMARY KEY,
    network           text    NOT NULL,
    user_id           text    NOT NULL,
    derivation_index  integer NOT NULL CHECK (derivation_index >= 0),
    address           text    NOT NULL,   -- display form (EIP-55, bech32, base58)
    match_key         text    NOT NULL,   -- what adapters put in Transfer.to
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (network, user_id),
    UNIQUE (network, derivation_index),
    UNIQUE (network, match_key)
);

CREATE TABLE deposits (
    id                      bigserial PRIMARY KEY,
    network                 text    NOT NULL,
    txid                    text    NOT NULL,
    position                text    NOT NULL,
    asset                   text,              -- NULL: unlisted token
    contract                text,
    decimals                integer,
    to_key                  text    NOT NULL,
    address_id              bigint  REFERENCES deposit_addresses (id),
    user_id                 text,
    amount                  numeric(78, 0) NOT NULL CHECK (amount >= 0),
    block_number            bigint,
    block_hash              text,
    status                  text    NOT NULL CHECK (status IN
                              ('seen', 'confirming', 'credited', 'orphaned', 'reversed', 'rejected')),
    reason                  text,
    confirmations           integer NOT NULL DEFAULT 0,
    required_confirmations  integer NOT NULL DEFAULT 0,
    coinbase                boolean NOT NULL DEFAULT false,
    credit_key              text UNIQUE,       -- idempotency key of the current ledger credit
    -- Bumped each time a reversed deposit is mined again (reorg back), so the new credit gets a
    -- new idempotency key instead of the ledger's remembered answer to the old one.
    credit_generation       integer NOT NULL DEFAULT 0,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    credited_at             timestamptz,
    UNIQUE (network, txid, position),
    CHECK (status <> 'rejected' OR reason IS NOT NULL)
);
CREATE INDEX deposits_open ON deposits (network, status) WHERE status IN ('seen', 'confirming');
CREATE INDEX deposits_block ON deposits (network, block_number);
CREATE INDEX deposits_user ON deposits (user_id, network);

-- Transactional outbox towards the ledger: written in the same transaction as the state change
-- it reports; a dispatcher delivers each message with its idempotency key until acknowledged.
CREATE TABLE ledger_outbox (
    id               bigserial PRIMARY KEY,
    idempotency_key  text  NOT NULL UNIQUE,
    kind             text  NOT NULL CHECK (kind IN ('credit', 'reversal', 'withdrawal_event')),
    payload          jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    last_error       text,
    response         jsonb
);
CREATE INDEX ledger_outbox_due ON ledger_outbox (next_attempt_at, id) WHERE delivered_at IS NULL;

CREATE TABLE alerts (
    id               bigserial PRIMARY KEY,
    kind             text NOT NULL,           -- network_mismatch, reorg_reversal, ...
    severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    network          text,
    asset            text,
    amount           numeric(78, 0),
    txid             text,
    user_id          text,
    message          text NOT NULL,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    dedup_key        text UNIQUE,             -- the same event raises one alert
    created_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    delivered_at     timestamptz              -- pushed to the webhook sink
);
CREATE INDEX alerts_open ON alerts (created_at) WHERE acknowledged_at IS NULL;

-- Append-only: UPDATE and DELETE are refused by a trigger, not by convention.
CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,
    action   text NOT NULL,
    subject  text,
    details  jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
