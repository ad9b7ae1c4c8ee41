-- One row per user, network and asset that intake locks (SELECT ... FOR UPDATE) while it checks
-- the daily withdrawal limit, so one user's concurrent requests are checked one after another.
-- A row lock rather than an advisory lock: it works the same behind a transaction-pooling proxy
-- and on PostgreSQL-compatible databases without advisory locks.
CREATE TABLE withdrawal_intake_locks (
    user_id  text NOT NULL,
    network  text NOT NULL,
    asset    text NOT NULL,
    PRIMARY KEY (user_id, network, asset)
);
