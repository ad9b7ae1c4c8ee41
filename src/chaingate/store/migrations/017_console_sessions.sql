-- Ops console sessions held on the server (issue 13): the encrypted cookie carries only a
-- random session id; this row says whether that id still stands. Logging out ends the row, so
-- a copied cookie is worth nothing afterwards (a cookie-only session would stay valid until
-- it expires). Only the SHA-256 of the id is stored: a read of this table logs nobody in.
CREATE TABLE console_sessions (
    id_sha256     bytea       PRIMARY KEY,
    principal     text        NOT NULL,
    token_sha256  bytea       NOT NULL,   -- the API token it logged in with (its digest)
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    ended_at      timestamptz
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
