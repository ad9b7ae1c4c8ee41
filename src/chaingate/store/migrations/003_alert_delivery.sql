-- Alert webhook delivery (alerting/pusher.py): the same bookkeeping as ledger_outbox. Rows are
-- claimed with FOR UPDATE SKIP LOCKED and a lease (next_attempt_at pushed forward before the
-- send); delivered_at (in 001) is set when the webhook answered 2xx.
ALTER TABLE alerts
    ADD COLUMN attempts         integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_error       text;

CREATE INDEX alerts_undelivered ON alerts (next_attempt_at, id) WHERE delivered_at IS NULL;
