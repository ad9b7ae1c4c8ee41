"""How the demo draws: without a terminal (or with --once, or in CI) a watched table prints a line
only for a row that changed, never a redraw; the capture is an SVG with its text beside it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from chaingate.demo.story import Section, story_for


def _table(confirmations: str, status: str) -> Section:
    return Section(
        "Payments",
        ("network", "asset", "amount", "confirmations", "status"),
        (("ethereum-devnet", "ETH", "1.5", confirmations, status),
         ("bitcoin-devnet", "BTC", "0.5", "-", "sent")),
        right=frozenset({"amount", "confirmations"}),
    )  # fmt: skip


def test_without_a_terminal_each_change_is_one_line_and_nothing_is_redrawn() -> None:
    out = io.StringIO()  # not a terminal
    story = story_for(out)
    assert not story.live
    story.step("mining")
    for conf, status in [("1 / 3", "confirming"), ("1 / 3", "confirming"), ("3 / 3", "credited")]:
        story.watch([_table(conf, status)])
    story.verdict(0, "all good")
    text = out.getvalue()
    assert "\x1b[" not in text  # no cursor movement, no colour codes
    eth = [line for line in text.splitlines() if line.lstrip().startswith("ethereum-devnet")]
    assert len(eth) == 2  # the unchanged second update printed nothing
    assert "1 / 3  confirming" in eth[0] and "3 / 3  credited" in eth[1]
    assert sum("bitcoin-devnet" in line for line in text.splitlines()) == 1
    assert text.rstrip().endswith("PASS: all good (exit code 0)")


def test_once_or_ci_never_redraws_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    assert story_for(Terminal()).live
    assert not story_for(Terminal(), once=True).live
    monkeypatch.setenv("CI", "true")
    assert not story_for(Terminal()).live


def test_the_capture_is_an_svg_with_its_text_and_loads_nothing_remote(tmp_path: Path) -> None:
    capture = tmp_path / "demo.svg"
    story = story_for(io.StringIO(), capture=capture)
    story.step("devnet up")
    story.show(_table("3 / 3", "credited"))
    story.verdict(1, "1 expected outcome(s) did not happen")
    story.close()
    svg = capture.read_text()
    assert svg.startswith("<svg") and "devnet&#160;up" in svg
    assert "http" not in svg.replace("http://www.w3.org", "").replace(
        "https://www.textualize.io", ""
    )
    text = capture.with_suffix(".txt").read_text()
    assert "==> devnet up" in text and "FAIL: 1 expected outcome(s)" in text
