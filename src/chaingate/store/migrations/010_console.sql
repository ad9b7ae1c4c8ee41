-- Ops console and ops actions (issue 13): the note an operator leaves when acknowledging an
-- alert, and indexes for the audit log filters (by actor, action and time).
ALTER TABLE alerts ADD COLUMN acknowledged_note text;

CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_at ON audit_log (at);
