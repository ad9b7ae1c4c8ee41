"""``chaingate`` command line (SPEC section 10). Every command has ``--help``.

One module per area registers its commands (`register(subparsers)`). A command that fails says
what failed, why and what to do in ONE line on stderr (``chaingate devnet up: ...; run ...``):
exit status 2 for a failure the gateway recognised (configuration, an unreachable database, a
missing node binary), 1 for anything else. ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from chaingate.cli import devnet, ops, service, signer
from chaingate.cli.common import log_level
from chaingate.errors import ChaingateError
from chaingate.logs import configure_logging

AREAS = (service, signer, devnet, ops)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chaingate",
        description="Deposit and withdrawal gateway. Configuration: the chains/ registry "
        "(CHAINGATE_CHAINS_DIR, CHAINGATE_NETWORKS) and CHAINGATE_* environment variables.",
    )
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback when a command fails"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for area in AREAS:
        area.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(os.environ.get("CHAINGATE_LOG_FORMAT", "auto"), log_level())
    func: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = args.func
    try:
        return asyncio.run(func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the command line's last word: one line, whatever went wrong
        if args.debug:
            traceback.print_exc()
        print(failure_line(_command_words(args), exc), file=sys.stderr)
        return 2 if isinstance(_leaf(exc), ChaingateError) else 1


# Subcommand destinations, outermost first: they name the command in the failure line.
_COMMAND_DESTS = ("command", "action", "ops_command", "alerts_action", "outbox_action")


def _command_words(args: argparse.Namespace) -> str:
    return " ".join(str(getattr(args, d)) for d in _COMMAND_DESTS if getattr(args, d, None))


def _leaf(exc: BaseException) -> BaseException:
    """The first real failure inside task-group wrappers (a service's TaskGroup)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def failure_line(command: str, exc: BaseException) -> str:
    """``chaingate <command>: <what failed and why>; <what to do>`` on one line."""
    leaf = _leaf(exc)
    # The first line: a longer message (a node's log tail) is for `--debug` and the log file.
    text = str(leaf).strip().splitlines()[0] if str(leaf).strip() else ""
    if isinstance(leaf, ChaingateError):
        what = text or type(leaf).__name__
        hint = leaf.hint
    else:  # not classified: name the type, since the message alone may mean little
        what = f"{type(leaf).__name__}: {text}" if text else type(leaf).__name__
        hint = "this is unexpected: run it again with `chaingate --debug ...` for the traceback"
    return f"chaingate {command}: {what}" + (f"; {hint}" if hint else "")
