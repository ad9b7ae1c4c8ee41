"""What the command line tells a person. A failing command says what failed, why and what to do
in ONE stderr line, exits non-zero, and shows a traceback only with ``--debug``; `devnet up`
says what it starts and how long each part took. Each case runs the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from chaingate.cli import failure_line
from chaingate.devnet.config import DevnetError, free_ports
from chaingate.devnet.manager import DevnetState


def chaingate(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chaingate.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def devnet_root(tmp_path: Path, **config: object) -> Path:
    """A devnet folder whose config.json says how it is to run (as `devnet up` records it)."""
    root = tmp_path / "devnet"
    root.mkdir()
    (root / "config.json").write_text(json.dumps(config))
    return root


def test_a_database_that_does_not_answer() -> None:
    (port,) = free_ports(1)
    env = {"CHAINGATE_DATABASE_URL": f"postgresql://cg:s3cret@127.0.0.1:{port}/gw"}
    for argv in (["migrate"], ["run", "--roles", "watchers"]):
        line = one_line(chaingate(*argv, env=env))
        command = argv[0]
        assert line.startswith(f"chaingate {command}: the database at 127.0.0.1:{port}/gw "), line
        assert "does not answer" in line and "ConnectionRefusedError" in line
        assert "start PostgreSQL there, or point CHAINGATE_DATABASE_URL at" in line
        assert "s3cret" not in line  # the DSN's password never reaches the terminal


def test_a_registry_file_with_an_error(tmp_path: Path) -> None:
    chains = tmp_path / "chains"
    chains.mkdir()
    env = {"CHAINGATE_CHAINS_DIR": str(chains),
           "CHAINGATE_DATABASE_URL": "postgresql://cg@127.0.0.1:5432/gw"}  # fmt: skip
    (chains / "x-devnet.toml").write_text('name = "x-devnet"\nkind = [\n')
    result = chaingate("run", env=env)
    line = one_line(result)
    assert result.returncode == 2
    assert line.startswith(f"chaingate run: {chains / 'x-devnet.toml'}: not valid TOML: "), line
    assert line.endswith("; fix the TOML syntax at that line")
    (chains / "x-devnet.toml").write_text('name = "x-devnet"\nkind = "evm"\nchain_id = 1\n')
    line = one_line(chaingate("run", env=env))
    assert line == (
        f"chaingate run: {chains / 'x-devnet.toml'}: endpoints: is required; "
        "fix that value (docs/configuration.md) and run the command again"
    ), line


def test_anvil_not_installed(tmp_path: Path) -> None:
    root = devnet_root(tmp_path, components=["eth"], anvil=str(tmp_path / "no" / "anvil"))
    result = chaingate("devnet", "up", "--root", str(root))
    line = one_line(result)
    assert result.returncode == 2
    assert line.startswith(
        f"chaingate devnet up: anvil is not installed ({tmp_path / 'no' / 'anvil'} is missing); "
        "run `make setup`"
    ), line
    assert "@foundry-rs/anvil" in line
    assert (root / "devnet.log").exists()  # the logs went to the file, not the terminal


def test_litecoind_not_installed(tmp_path: Path) -> None:
    root = devnet_root(tmp_path, components=["litecoind"], litecoind="/nonexistent/litecoind")
    line = one_line(chaingate("devnet", "up", "--root", str(root)))
    assert line == (
        "chaingate devnet up: litecoind is not installed (/nonexistent/litecoind is missing); "
        "run `make setup`, or `apt-get install litecoind` (Debian's package)"
    ), line


async def test_a_port_taken_by_another_devnet(tmp_path: Path, devnet: DevnetState) -> None:
    # A second devnet configured onto the running test devnet's anvil port.
    other = devnet.config
    root = devnet_root(tmp_path, components=["eth"], eth_port=other.eth_port)
    result = chaingate("devnet", "up", "--root", str(root))
    line = one_line(result)
    assert result.returncode == 2
    assert line.startswith(
        f"chaingate devnet up: eth cannot start: port {other.eth_port} is already taken by "
        f"another devnet's anvil (pid "
    ), line
    assert f"under {other.root}; stop it (`chaingate devnet down --root {other.root}`)" in line
    # Nothing of the refused devnet was left running, and the other one still answers.
    assert not (root / "eth" / "eth.pid").exists()
    status = chaingate("devnet", "status", "--root", str(other.root))
    assert status.returncode == 0, status.stdout + status.stderr


def test_debug_adds_the_traceback_before_the_same_line(tmp_path: Path) -> None:
    root = devnet_root(tmp_path, components=["eth"], anvil=str(tmp_path / "no" / "anvil"))
    plain = one_line(chaingate("devnet", "up", "--root", str(root)))
    result = chaingate("--debug", "devnet", "up", "--root", str(root))
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == plain


def test_an_unclassified_failure_names_its_type_and_points_to_debug() -> None:
    group = ExceptionGroup("service", [KeyError("height")])  # as a service's TaskGroup raises
    assert failure_line("run", group) == (
        "chaingate run: KeyError: 'height'; this is unexpected: run it again with "
        "`chaingate --debug ...` for the traceback"
    )
    inner = ExceptionGroup("service", [DevnetError("eth exited\nlog tail", hint="see the log")])
    assert failure_line("devnet up", inner) == "chaingate devnet up: eth exited; see the log"


async def test_devnet_up_says_what_it_starts_and_how_long_each_part_took(
    devnet: DevnetState,
) -> None:
    root = devnet.config.root
    result = chaingate("devnet", "up", "--root", str(root))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # the logs went to the devnet's log file
    lines = result.stdout.splitlines()
    assert lines[0] == f"devnet up under {root} (logs: {root / 'devnet.log'})"
    assert lines[1].startswith("  starting bsc (anvil, chain 31338, port ")
    assert "litecoind (litecoind regtest (Bitcoin stand-in), port " in lines[1]
    for name in ("eth", "bsc", "litecoind", "tron"):  # all already running: reused, timed
        assert any(re.match(rf"  {name} +already running +\d+\.\d s", line) for line in lines)
    assert re.match(r"devnet up in \d+\.\d s", lines[6]), lines
