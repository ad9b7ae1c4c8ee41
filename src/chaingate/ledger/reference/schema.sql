-- Reference ledger schema. Idempotent: run at every startup (under an advisory lock).
-- Amounts are NUMERIC(78,0): integer base units up to 2^256, never floating point.

CREATE SCHEMA IF NOT EXISTS refledger;

-- One row per idempotency key: the first answer, returned again for every repeat.
-- status_code is NULL only inside the transaction that is applying the request.
CREATE TABLE IF NOT EXISTS refledger.requests (
    idempotency_key  text PRIMARY KEY,
    route            text NOT NULL,
    body_hash        text NOT NULL,
    status_code      integer,
    response         jsonb,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS refledger.credits (
    credit_key    text PRIMARY KEY,
    user_id       text NOT NULL,
    network       text NOT NULL,
    asset         text NOT NULL,
    amount        numeric(78, 0) NOT NULL CHECK (amount > 0),
    decimals      integer NOT NULL,
    txid          text NOT NULL,
    position      text NOT NULL,
    block_number  bigint NOT NULL,
    reversed      boolean NOT NULL DEFAULT false,
    reversal_key  text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- A deposit is credited at most once while its credit stands, whatever key it arrives with;
-- after a reversal (reorg) the same transaction may be credited again when re-mined.
CREATE UNIQUE INDEX IF NOT EXISTS credits_deposit_once
    ON refledger.credits (network, txid, position) WHERE NOT reversed;
CREATE INDEX IF NOT EXISTS credits_user ON refledger.credits (user_id);

CREATE TABLE IF NOT EXISTS refledger.balances (
    user_id  text NOT NULL,
    network  text NOT NULL,
    asset    text NOT NULL,
    -- May go negative: a reversal after the user spent the credit leaves a debt, not an error.
    amount   numeric(78, 0) NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, network, asset)
);

CREATE TABLE IF NOT EXISTS refledger.withdrawal_events (
    idempotency_key  text PRIMARY KEY,
    withdrawal_id    text NOT NULL,
    status           text NOT NULL,
    txid             text,
    fee              numeric(78, 0),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS withdrawal_events_withdrawal
    ON refledger.withdrawal_events (withdrawal_id, created_at);

-- Funds held for withdrawals: held at `requested` (the balance minus what is already held must
-- cover it), settled at `confirmed` (the balance goes down), released at `failed`/`cancelled`.
CREATE TABLE IF NOT EXISTS refledger.holds (
    withdrawal_id  text PRIMARY KEY,
    user_id        text NOT NULL,
    network        text NOT NULL,
    asset          text NOT NULL,
    amount         numeric(78, 0) NOT NULL CHECK (amount > 0),
    status         text NOT NULL CHECK (status IN ('held', 'settled', 'released')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS holds_open ON refledger.holds (user_id, network, asset)
    WHERE status = 'held';
