-- The signer never talks to a node: what it needs from the chain to sign a batch (fee history,
-- gas estimates, the hot address's pending nonce) is fetched by the planner in the broadcaster
-- role and written here. A job is claimable by a signer only once it has a plan; the plan is
-- unauthenticated input that can only move fees (held under the approved fee cap) and the
-- starting nonce (never below what the signer itself recorded).
ALTER TABLE signer_jobs
    ADD COLUMN plan        jsonb,
    ADD COLUMN planned_at  timestamptz;
