-- Staging only: a separate database for the reference ledger (it creates its schema itself).
CREATE DATABASE ledger;
