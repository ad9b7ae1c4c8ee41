-- One leased queue (store/queue.py) for every table worked by claim/complete: the columns of its
-- convention that ledger_outbox and alerts lacked. lease_token is a fresh value of
-- queue_lease_token at every claim, so a worker whose lease ran out cannot finish a row another
-- worker claimed since; parked_at marks a row refused for good (next_attempt_at = 'infinity').
CREATE SEQUENCE IF NOT EXISTS queue_lease_token;

ALTER TABLE ledger_outbox
    ADD COLUMN leased_by    text,
    ADD COLUMN lease_token  bigint,
    ADD COLUMN parked_at    timestamptz;

ALTER TABLE alerts
    ADD COLUMN leased_by    text,
    ADD COLUMN lease_token  bigint,
    ADD COLUMN parked_at    timestamptz;

UPDATE ledger_outbox SET parked_at = now()
 WHERE delivered_at IS NULL AND next_attempt_at = 'infinity';
