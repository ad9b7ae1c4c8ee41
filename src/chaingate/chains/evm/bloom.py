"""The logsBloom of an EVM block header, and the completeness check of eth_getLogs against it.

A block's 2048-bit bloom holds, for every log in the block, its address and each topic: three
bits per item, each taken from a pair of bytes of keccak256(item) (yellow paper, M3:2048). The
header commits to it, so an endpoint that serves the block honestly but drops logs from its
eth_getLogs answer (a load-balanced backend with a missing index, a truncated response) shows:
the bloom admits a listed token's Transfer that the answer lacks. A bloom can also admit what
is not there (a false positive), which is why the adapter settles a suspicion with the block's
receipts before it blames anyone.
"""

from __future__ import annotations

from functools import lru_cache

from Crypto.Hash import keccak as _keccak

from chaingate.errors import ChainDataError

BLOOM_BYTES = 256


def bloom_bits(item: bytes) -> tuple[int, int, int]:
    """The three bit positions (0 = least significant bit of the last byte) ``item`` sets."""
    # pycryptodome directly (eth_utils.keccak's own backend): half the per-call cost of the
    # eth_utils wrapper, and a dense block's receipts need a mask for every log's topics.
    digest = _keccak.new(data=item, digest_bits=256).digest()
    return (
        ((digest[0] << 8) | digest[1]) & 0x7FF,
        ((digest[2] << 8) | digest[3]) & 0x7FF,
        ((digest[4] << 8) | digest[5]) & 0x7FF,
    )


def parse_bloom(text: str) -> int:
    """A header's ``logsBloom`` (0x + 512 hex digits) as one 2048-bit integer."""
    if not isinstance(text, str) or len(text) != 2 + 2 * BLOOM_BYTES or text[:2] != "0x":
        raise ChainDataError("logsBloom is not 256 bytes of hex")
    try:
        return int(text, 16)
    except ValueError:
        raise ChainDataError("logsBloom is not 256 bytes of hex") from None


def bloom_mask(item: bytes) -> int:
    """The bits ``item`` sets, as a mask over the integer of :func:`parse_bloom`."""
    mask = 0
    for bit in bloom_bits(item):
        mask |= 1 << bit
    return mask


@lru_cache(maxsize=4096)
def item_mask(text: str) -> int:
    """:func:`bloom_mask` of an address or topic in 0x hex. Cached: a chain repeats its token
    contracts, event topics and busy senders; 4,096 masks of 2,048 bits are about 2 MB."""
    return bloom_mask(hex_bytes(text))


def admits(bloom: int, mask: int) -> bool:
    """Whether a bloom may hold the item(s) of ``mask`` (never False for one it holds)."""
    return bloom & mask == mask


def hex_bytes(value: str) -> bytes:
    """An address or topic in 0x hex as the bytes the bloom is built over."""
    try:
        return bytes.fromhex(value[2:] if value.startswith(("0x", "0X")) else value)
    except ValueError:
        raise ChainDataError(f"not hex: {value!r:.70}") from None


def log_mask(address: str, topics: list[str]) -> int:
    """The bits a log sets: its address and each of its topics."""
    mask = item_mask(address)
    for topic in topics:
        mask |= item_mask(topic)
    return mask
