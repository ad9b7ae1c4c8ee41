-- Each watcher's view of its network, written at most every few seconds by watcher/progress.py:
-- the head it saw, its cursor, and while it is catching up, its rate and the time left. Read by
-- GET /v1/networks and the ops console (a watcher and the API may run in different processes).
-- Not a source of truth for crediting: chain_cursor is.
CREATE TABLE network_progress (
    network            text PRIMARY KEY,
    head               bigint NOT NULL,
    cursor             bigint NOT NULL,
    catching_up        boolean NOT NULL,
    blocks_done        bigint NOT NULL DEFAULT 0,   -- since this catch-up began
    blocks_per_second  double precision,            -- NULL until it can be measured
    eta_seconds        double precision,            -- NULL when caught up or not measurable
    updated_at         timestamptz NOT NULL DEFAULT now()
);
