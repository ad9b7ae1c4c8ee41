-- The coins of our own wallets on UTXO chains (Bitcoin): what a batch transaction can spend.
-- Followed from the blocks the watcher verified (withdrawals/coins.py) and from the batches
-- we sign (our change is a coin before it is mined). ``owner`` says whose key spends a coin:
-- 'hot' (the hot wallet, chain/index below its account xpub); deposit addresses' coins can be
-- added later as owner 'deposit' for consolidation.
CREATE TABLE wallet_addresses (
    network      text     NOT NULL,
    owner        text     NOT NULL CHECK (owner IN ('hot', 'deposit')),
    chain        smallint NOT NULL CHECK (chain >= 0),   -- BIP32: 0 receive, 1 change
    index        integer  NOT NULL CHECK (index >= 0),
    script       text     NOT NULL,                      -- scriptPubKey, lowercase hex
    used         boolean  NOT NULL DEFAULT false,        -- an output ever paid it (gap limit)
    PRIMARY KEY (network, owner, chain, index),
    UNIQUE (network, script)
);

CREATE TABLE wallet_coins (
    network             text    NOT NULL,
    txid                text    NOT NULL,
    vout                integer NOT NULL CHECK (vout >= 0),
    amount              numeric(20, 0) NOT NULL CHECK (amount > 0),
    script              text    NOT NULL,
    owner               text    NOT NULL,
    chain               smallint NOT NULL,
    index               integer NOT NULL,
    own_change          boolean NOT NULL DEFAULT false,  -- an output of a transaction we signed
    block_number        bigint,                          -- NULL: not (or no longer) in a block
    block_hash          text,
    spent_txid          text,                            -- the transaction that spends it
    spent_block_number  bigint,                          -- NULL: that spend is not in a block
    spent_block_hash    text,
    -- The signed batch transaction that spends it: set in the SAME database transaction that
    -- records the signed bytes, under the allocator's fencing lease; never two at once.
    locked_by           bigint REFERENCES withdrawal_txs (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (network, txid, vout)
);
CREATE INDEX wallet_coins_unspent ON wallet_coins (network, owner) WHERE spent_txid IS NULL;
CREATE INDEX wallet_coins_block ON wallet_coins (network, block_number);
CREATE INDEX wallet_coins_spent_block ON wallet_coins (network, spent_block_number);
CREATE INDEX wallet_coins_locked ON wallet_coins (locked_by) WHERE locked_by IS NOT NULL;

-- The blocks the coin follower has read, by height: where it stands, and what it compares
-- with the watcher's verified hashes (block_hashes) to notice a reorg.
CREATE TABLE wallet_blocks (
    network  text   NOT NULL,
    number   bigint NOT NULL,
    hash     text   NOT NULL,
    PRIMARY KEY (network, number)
);
