"""TRON family: base58check addresses, java-tron HTTP decoding, the TronAdapter."""
