"""``database`` and ``ledger_url`` for modules of many short tests: one migrated database and one
reference ledger per module, emptied before each test (conftest.emptied) instead of created and
dropped. A module opts in with ``database = emptied_fixtures.database`` (and ``ledger_url``)."""

from __future__ import annotations

import pytest

from conftest import emptied, emptied_ledger


@pytest.fixture
async def database(module_database: str) -> str:
    """One migrated database for the module, emptied before each test."""
    return await emptied(module_database)


@pytest.fixture
async def ledger_url(module_ledger: tuple[str, str]) -> str:
    """One reference ledger for the module, emptied before each test."""
    return await emptied_ledger(module_ledger)


__all__ = ["database", "ledger_url"]
