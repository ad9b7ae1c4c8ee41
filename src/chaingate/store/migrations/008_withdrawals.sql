-- Withdrawals (SPEC section 7): requests, their history, batches with the exact outputs their
-- content hash covers, sealed approvals, the signer queue and the signed transactions.
-- Amounts are NUMERIC(78,0): integer base units up to 2^256, never floating point. Statuses
-- follow the state machines in domain/withdrawals.py; store/withdrawals.py is the only writer.

CREATE TABLE batches (
    id                bigserial PRIMARY KEY,
    network           text    NOT NULL,
    asset             text    NOT NULL,
    chain_id          bigint,                    -- EVM chain id (covered by the content hash)
    contract          text,                      -- canonical contract; NULL for the native coin
    decimals          integer NOT NULL,
    fee_cap           numeric(78, 0) NOT NULL CHECK (fee_cap > 0),   -- native units per tx
    total             numeric(78, 0) NOT NULL CHECK (total > 0),
    output_count      integer NOT NULL CHECK (output_count > 0),
    content_hash      text    NOT NULL,
    content_version   integer NOT NULL,
    maker             text    NOT NULL,
    made_at           timestamptz NOT NULL,
    maker_seal        text    NOT NULL,          -- HMAC over (make, id, hash, maker, made_at)
    status            text    NOT NULL CHECK (status IN ('pending_approval', 'approved',
                          'signing', 'signed', 'broadcast', 'completed', 'rejected', 'failed')),
    approved_at       timestamptz,
    rejected_by       text,
    rejection_reason  text,
    failure_reason    text,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'rejected' OR rejection_reason IS NOT NULL)
);
CREATE INDEX batches_status ON batches (status, id);

CREATE TABLE withdrawals (
    id              bigserial PRIMARY KEY,
    request_id      text    NOT NULL UNIQUE,      -- the caller's idempotency key
    request_hash    text    NOT NULL,             -- sha256 of the canonical request (409 check)
    user_id         text    NOT NULL,
    network         text    NOT NULL,
    asset           text    NOT NULL,
    destination     text    NOT NULL,             -- canonical form for the network (EIP-55, ...)
    amount          numeric(78, 0) NOT NULL CHECK (amount > 0),
    status          text    NOT NULL CHECK (status IN ('requested', 'batched', 'approved',
                        'signing', 'signed', 'broadcast', 'confirmed', 'failed', 'cancelled')),
    batch_id        bigint  REFERENCES batches (id),
    txid            text,
    fee             numeric(78, 0) CHECK (fee >= 0),   -- native units, once known
    confirmations   integer NOT NULL DEFAULT 0,
    failure_reason  text,
    requested_by    text    NOT NULL,             -- the API principal that submitted it
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (status NOT IN ('failed', 'cancelled') OR failure_reason IS NOT NULL),
    -- From batched on, a withdrawal belongs to a batch (a released one goes back to none).
    CONSTRAINT withdrawals_batched_have_batch
        CHECK (status IN ('requested', 'failed', 'cancelled') OR batch_id IS NOT NULL)
);
CREATE INDEX withdrawals_pending ON withdrawals (network, asset, id) WHERE status = 'requested';
CREATE INDEX withdrawals_user_day ON withdrawals (user_id, network, asset, created_at);
CREATE INDEX withdrawals_batch ON withdrawals (batch_id);
CREATE INDEX withdrawals_list ON withdrawals (network, status, id);

-- Every status change of a withdrawal, in order, with who made it and when.
CREATE TABLE withdrawal_history (
    id             bigserial PRIMARY KEY,
    withdrawal_id  bigint NOT NULL REFERENCES withdrawals (id),
    from_status    text,                          -- NULL for the request itself
    to_status      text   NOT NULL,
    actor          text   NOT NULL,
    reason         text,
    details        jsonb  NOT NULL DEFAULT '{}'::jsonb,
    at             timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX withdrawal_history_of ON withdrawal_history (withdrawal_id, id);

-- The exact outputs a batch's content hash covers, as they were when the batch was made.
CREATE TABLE batch_outputs (
    batch_id       bigint NOT NULL REFERENCES batches (id),
    withdrawal_id  bigint NOT NULL REFERENCES withdrawals (id),
    destination    text   NOT NULL,
    amount         numeric(78, 0) NOT NULL CHECK (amount > 0),
    PRIMARY KEY (batch_id, withdrawal_id)
);
CREATE INDEX batch_outputs_withdrawal ON batch_outputs (withdrawal_id);

-- One sealed approval per principal and batch; the seal is an HMAC under a key the database
-- never holds (domain/approvals.py), so an inserted or edited row does not verify.
CREATE TABLE approvals (
    id            bigserial PRIMARY KEY,
    batch_id      bigint NOT NULL REFERENCES batches (id),
    content_hash  text   NOT NULL,
    principal     text   NOT NULL,
    approved_at   timestamptz NOT NULL,
    seal          text   NOT NULL,
    UNIQUE (batch_id, principal)
);

-- The signer queue: one job per approved batch (UNIQUE), worked through store/queue.py's
-- leased-queue column convention.
CREATE TABLE signer_jobs (
    id               bigserial PRIMARY KEY,
    batch_id         bigint  NOT NULL UNIQUE REFERENCES batches (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    leased_by        text,
    lease_token      bigint,
    done_at          timestamptz,
    parked_at        timestamptz,
    last_error       text
);
CREATE INDEX signer_jobs_due ON signer_jobs (next_attempt_at, id) WHERE done_at IS NULL;

-- Signed transactions, stored before broadcast; only these bytes are ever (re)broadcast. A
-- replacement at the same nonce is a new row; the replaced one points at it (replaced_by).
-- The broadcaster works the rows through the leased-queue convention (done_at: tracking over).
CREATE TABLE withdrawal_txs (
    id                        bigserial PRIMARY KEY,
    batch_id                  bigint  NOT NULL REFERENCES batches (id),
    withdrawal_id             bigint  REFERENCES withdrawals (id),  -- NULL: several outputs
    network                   text    NOT NULL,
    from_address              text    NOT NULL,
    nonce                     bigint,                    -- EVM; NULL where the chain has none
    raw_tx                    text    NOT NULL,          -- signed bytes, hex
    txid                      text    NOT NULL,
    fee_cap                   numeric(78, 0),            -- the most this tx may pay (native)
    max_fee_per_gas           numeric(78, 0),
    max_priority_fee_per_gas  numeric(78, 0),
    gas_limit                 bigint,
    fee                       numeric(78, 0),            -- paid, once mined
    status                    text    NOT NULL DEFAULT 'signed' CHECK (status IN
                                  ('signed', 'broadcast', 'confirmed', 'replaced', 'failed')),
    replaced_by               bigint  REFERENCES withdrawal_txs (id),
    signer_epoch              bigint,                    -- the allocator's fencing epoch
    block_number              bigint,
    block_hash                text,
    confirmations             integer NOT NULL DEFAULT 0,
    created_at                timestamptz NOT NULL DEFAULT now(),
    broadcast_at              timestamptz,
    attempts                  integer NOT NULL DEFAULT 0,
    next_attempt_at           timestamptz NOT NULL DEFAULT now(),
    leased_by                 text,
    lease_token               bigint,
    done_at                   timestamptz,
    parked_at                 timestamptz,
    last_error                text,
    UNIQUE (network, txid)
);
-- One live transaction per nonce of a hot address: two signers can never both record one.
CREATE UNIQUE INDEX withdrawal_txs_nonce_once ON withdrawal_txs (network, from_address, nonce)
    WHERE replaced_by IS NULL AND nonce IS NOT NULL;
CREATE INDEX withdrawal_txs_due ON withdrawal_txs (next_attempt_at, id) WHERE done_at IS NULL;
CREATE INDEX withdrawal_txs_batch ON withdrawal_txs (batch_id);
CREATE INDEX withdrawal_txs_withdrawal ON withdrawal_txs (withdrawal_id);
