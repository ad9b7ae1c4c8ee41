"""`running_devnet`: a whole devnet for a pytest session, torn down completely afterwards.

    @pytest.fixture(scope="session")
    async def devnet(tmp_path_factory):
        async with running_devnet(tmp_path_factory.mktemp("devnet")) as state:
            yield state

Ports are free ones (never the `make demo` ports) and the database is uniquely named. Teardown
runs even when startup fails half-way: every process is stopped, a database we created on a
shared server is dropped, and the devnet folder is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path

import structlog

from chaingate.devnet import manager, postgres
from chaingate.devnet.config import DevnetConfig, DevnetError
from chaingate.devnet.manager import DevnetState

log = structlog.get_logger(__name__)
START_ATTEMPTS = 3


@contextlib.asynccontextmanager
async def running_devnet(
    tmp_path: Path,
    components: Iterable[str] | None = None,
    env: Mapping[str, str] | None = None,
    force_pg_cluster: bool = False,
) -> AsyncIterator[DevnetState]:
    """Bring a devnet up under ``tmp_path / "devnet"`` and take all of it down on exit.

    Free ports are picked before the nodes bind them, so another process on the machine can
    take one in between; a start that fails is torn down and tried again on fresh ports.
    """
    environ = os.environ if env is None else env
    wanted = list(components) if components is not None else None
    for attempt in range(1, START_ATTEMPTS + 1):
        cfg = DevnetConfig.for_tests(
            tmp_path / f"devnet{attempt}", components=wanted, force_pg_cluster=force_pg_cluster
        )
        try:
            state = await manager.up(cfg, environ)
        except DevnetError as exc:
            await teardown(cfg)
            if attempt == START_ATTEMPTS:
                raise
            log.warning("devnet_start_retry", attempt=attempt, error=str(exc))
            continue
        try:
            yield state
        finally:
            await teardown(cfg)
        return


async def teardown(cfg: DevnetConfig) -> None:
    """Stop everything, drop the test database if we created it, remove every file."""
    saved = manager.load_saved(cfg)
    try:
        await manager.down(cfg)
        database = saved.get("database") or {}
        if database.get("source") == "local" and database.get("created"):
            await postgres.drop_database(postgres.LOCAL_SERVER, database["name"])
    finally:
        postgres.remove_cluster(cfg)
        shutil.rmtree(cfg.root, ignore_errors=True)
        log.info("devnet_torn_down", root=str(cfg.root))
