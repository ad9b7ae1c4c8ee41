-- The dispatcher's claim (ledger/dispatcher.py OUTBOX.eligible) asks, for every due row, whether
-- an undelivered reversal or an earlier undelivered event of the same withdrawal stands before
-- it. Without these indexes each of those questions walked every undelivered row below it (a
-- backlog of n credits cost n^2/2 row visits per claim, and the planner's cost estimate then
-- also JIT-compiled the query: ~1 s per claim at a few thousand rows, issue 9). Both sets are
-- nearly always empty or tiny, so these indexes stay small. The claim takes due rows in id
-- order: walked on the primary key it also stepped over every delivered row, which stay.
CREATE INDEX ledger_outbox_open ON ledger_outbox (id) WHERE delivered_at IS NULL;
CREATE INDEX ledger_outbox_open_reversals ON ledger_outbox (id)
    WHERE kind = 'reversal' AND delivered_at IS NULL;
CREATE INDEX ledger_outbox_open_withdrawal_events ON ledger_outbox ((payload->>'withdrawal_id'), id)
    WHERE kind = 'withdrawal_event' AND delivered_at IS NULL;
