"""`chaingate signer` (run the key-holding signer) and `chaingate signer keystore ...`.

This module imports nothing of the API, the provider layer or aiohttp at any point: the signer
process must not load them (import-linter checks the signer package; a test checks the process).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from chaingate.cli.common import stop_on_signals
from chaingate.errors import KeystoreError


async def _run(_: argparse.Namespace) -> int:
    from chaingate.signer.config import SignerSettings
    from chaingate.signer.service import Signer
    from chaingate.store import connect_pool

    settings = SignerSettings.from_env(os.environ)
    stop = stop_on_signals()
    pool = await connect_pool(settings.database_url, max_size=4)
    try:
        await Signer(pool, settings).run(stop)
    finally:
        await pool.close()
    return 0


def _passphrase(confirm: bool) -> str:
    """From the environment (or its file), else asked on the terminal; never an argument."""
    from chaingate.signer.keystore import ENV_PASSPHRASE, ENV_PASSPHRASE_FILE, passphrase_from_env

    if os.environ.get(ENV_PASSPHRASE) or os.environ.get(ENV_PASSPHRASE_FILE):
        return passphrase_from_env(os.environ)
    if not sys.stdin.isatty():
        raise KeystoreError(f"set {ENV_PASSPHRASE} or {ENV_PASSPHRASE_FILE} (no terminal to ask)")
    first = getpass.getpass("keystore passphrase: ")
    if confirm and getpass.getpass("again: ") != first:
        raise KeystoreError("the two passphrases differ")
    return first


async def _create(args: argparse.Namespace) -> int:
    from chaingate.signer.keystore import write_keystore

    address = write_keystore(Path(args.out), os.urandom(32), _passphrase(confirm=True))
    print(address)
    return 0


async def _import(args: argparse.Namespace) -> int:
    """The key is read from standard input (one hex line), never from the command line, where
    it would show in the process list and the shell history."""
    from chaingate.signer.keystore import write_keystore

    line = sys.stdin.readline().strip().removeprefix("0x")
    try:
        secret = bytes.fromhex(line)
    except ValueError:
        raise KeystoreError("standard input: expected the private key as 64 hex digits") from None
    if len(secret) != 32:
        raise KeystoreError("standard input: expected the private key as 64 hex digits")
    address = write_keystore(Path(args.out), secret, _passphrase(confirm=True))
    print(address)
    return 0


async def _show(args: argparse.Namespace) -> int:
    from chaingate.signer.keystore import keystore_address

    print(keystore_address(Path(args.path)))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "signer",
        help="run the key-holding signer (or manage its keystore)",
        description="Without a subcommand: sign the jobs of approved withdrawal batches. Keys: "
        "CHAINGATE_SIGNER_KEYSTORE with CHAINGATE_SIGNER_PASSPHRASE(_FILE), or on devnet only "
        "CHAINGATE_SIGNER_DEVNET_KEYS; limits: CHAINGATE_SIGNER_LIMITS; database role: "
        "CHAINGATE_SIGNER_DATABASE_URL.",
    )
    p.set_defaults(func=_run)
    signer_sub = p.add_subparsers(dest="signer_command", metavar="SUBCOMMAND")
    keystore = signer_sub.add_parser("keystore", help="create, import or inspect a keystore file")
    ks = keystore.add_subparsers(dest="keystore_command", required=True, metavar="ACTION")
    create = ks.add_parser("create", help="a new random key in a new keystore v3 file")
    create.add_argument("--out", required=True, help="keystore file to write (must not exist)")
    create.set_defaults(func=_create)
    imp = ks.add_parser("import", help="encrypt a key read from standard input")
    imp.add_argument("--out", required=True, help="keystore file to write (must not exist)")
    imp.set_defaults(func=_import)
    show = ks.add_parser("show-address", help="the address of a keystore (no passphrase needed)")
    show.add_argument("path")
    show.set_defaults(func=_show)
