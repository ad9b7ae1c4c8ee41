"""The chain-agnostic watcher: cursor, reorg detection, confirmations, crediting."""

from chaingate.watcher.loop import StepResult, Watcher

__all__ = ["StepResult", "Watcher"]
