-- TRON withdrawal transactions (issue 12). A TRON transaction has no nonce: what makes it
-- unique and mortal is its reference block (TaPoS) and its expiration, both inside the signed
-- bytes and recorded here in the same database transaction as those bytes. It may be
-- rebroadcast (the same bytes) until expiration_ms; after that it can never be mined.
ALTER TABLE withdrawal_txs
    ADD COLUMN expiration_ms     bigint,          -- TRON: expiration in the signed bytes (ms)
    ADD COLUMN ref_block_number  bigint,          -- TRON: the solidified reference block
    ADD COLUMN ref_block_id      text,
    ADD COLUMN fee_limit         numeric(78, 0),  -- TRON: the most its energy may burn (sun)
    ADD COLUMN energy_used       bigint,          -- TRON: what it consumed, once in a block
    ADD COLUMN net_usage         bigint,          -- TRON: free bandwidth bytes it used
    ADD COLUMN net_fee           numeric(78, 0);  -- TRON: sun burned for bandwidth/activation
