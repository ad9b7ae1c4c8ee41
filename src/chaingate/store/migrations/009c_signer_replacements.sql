-- Same-nonce replacement of a stuck withdrawal transaction (SPEC 7). The tracker asks, the
-- signer signs: a request names the live transaction to replace and carries the fresh fee
-- figures (the signer never talks to a node). Worked through store/queue.py's convention.
CREATE TABLE signer_replacements (
    id               bigserial PRIMARY KEY,
    tx_id            bigint  NOT NULL UNIQUE REFERENCES withdrawal_txs (id),
    plan             jsonb   NOT NULL,
    planned_at       timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    leased_by        text,
    lease_token      bigint,
    done_at          timestamptz,
    parked_at        timestamptz,
    last_error       text
);
CREATE INDEX signer_replacements_due ON signer_replacements (next_attempt_at, id)
    WHERE done_at IS NULL;
