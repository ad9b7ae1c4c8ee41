-- The signer's own database role: it may read what it checks and signs (batches, their outputs,
-- withdrawals, approvals, its queues), work its queues, record signed transactions, hold the
-- allocator leases and raise alerts. Nothing else: it cannot approve, edit a batch or a
-- withdrawal, change a status, read the ledger outbox or the audit log.
--
--   psql "$ADMIN_DSN" -v ON_ERROR_STOP=1 -f deploy/postgres/signer_role.sql
--   psql "$ADMIN_DSN" -c "ALTER ROLE chaingate_signer LOGIN PASSWORD '...'"
--   CHAINGATE_SIGNER_DATABASE_URL=postgresql://chaingate_signer:...@host/chaingate
--
-- Run it after `chaingate migrate` (the tables must exist), and again after an upgrade that
-- adds signer tables. Idempotent.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chaingate_signer') THEN
        CREATE ROLE chaingate_signer NOLOGIN;
    END IF;
END $$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM chaingate_signer;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM chaingate_signer;
GRANT USAGE ON SCHEMA public TO chaingate_signer;

-- Read what it verifies.
GRANT SELECT ON batches, batch_outputs, withdrawals, approvals TO chaingate_signer;

-- Whether the ledger acknowledged holding a withdrawal's funds (store.batches.unheld): the
-- key and the delivery time of outbox rows, not their payloads.
GRANT SELECT (idempotency_key, delivered_at) ON ledger_outbox TO chaingate_signer;

-- Its queues (store/queue.py columns; the plan may be sent back to the planner).
GRANT SELECT ON signer_jobs, signer_replacements TO chaingate_signer;
GRANT UPDATE (attempts, next_attempt_at, leased_by, lease_token, done_at, parked_at, last_error,
              plan, planned_at)
    ON signer_jobs TO chaingate_signer;
GRANT UPDATE (attempts, next_attempt_at, leased_by, lease_token, done_at, parked_at, last_error)
    ON signer_replacements TO chaingate_signer;

-- The signatures: insert, and step an old one aside for its same-nonce replacement.
GRANT SELECT, INSERT ON withdrawal_txs TO chaingate_signer;
GRANT UPDATE (replaced_by, status) ON withdrawal_txs TO chaingate_signer;

-- The allocator's fencing leases, and critical alerts about what it refused.
GRANT SELECT, INSERT, UPDATE ON leases TO chaingate_signer;
GRANT INSERT ON alerts TO chaingate_signer;
GRANT SELECT (dedup_key) ON alerts TO chaingate_signer;  -- ON CONFLICT (dedup_key) needs it

GRANT USAGE ON SEQUENCE queue_lease_token, withdrawal_txs_id_seq, alerts_id_seq TO chaingate_signer;
