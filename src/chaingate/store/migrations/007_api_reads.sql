-- GET /v1/deposits pages newest first by id (keyset: id < cursor) under any combination of
-- filters; each filter gets an index that yields its rows in id order.
CREATE INDEX deposits_user_id ON deposits (user_id, id);
CREATE INDEX deposits_network_id ON deposits (network, id);
CREATE INDEX deposits_txid ON deposits (txid);
