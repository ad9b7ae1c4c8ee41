"""How the demo talks to a person: one line per step, live tables while it waits, a summary.

The demo's acts (deposits today; withdrawal batches and the ops console as they land) describe
what they show as ``Section``s, plain data; a ``Story`` decides how to draw them. On a terminal
the sections being watched are redrawn in place (rich's Live); with ``--once``, in CI or when
stdout is not a terminal, the same story is told without redraws: a line for every row that
changed. ``--capture`` records the output as an SVG (and its text beside it) or a text file:
docs/demo.svg and docs/demo.txt are one run's.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

_REMOTE_FONTS = re.compile(r"@font-face \{[^}]*\}\s*")
_WIDTH = 120  # the capture and non-terminal output: wide enough for a txid-free table
_STYLES = {"credited": "green", "rejected": "yellow", "confirming": "cyan", "PASS": "bold green",
           "FAIL": "bold red", "sent": "dim", "critical": "red"}  # fmt: skip


@dataclass(frozen=True)
class Section:
    """A titled table: what an act shows. ``right`` names the columns aligned right (amounts)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    right: frozenset[str] = frozenset()
    key_columns: int = 3  # a row's identity in change lines: its first columns
    note: str = ""  # one line under the table
    widths: tuple[int, ...] = ()  # least column widths in change lines (values still to come)


def _style(cell: str) -> str:
    return next((style for word, style in _STYLES.items() if cell.startswith(word)), "")


def render(section: Section) -> Table:
    table = Table(title=section.title, title_justify="left", title_style="bold", expand=False)
    for name in section.columns:
        table.add_column(name, justify="right" if name in section.right else "left")
    for row in section.rows:
        table.add_row(*(Text(cell, style=_style(cell)) for cell in row))
    if section.note:
        table.caption, table.caption_justify = section.note, "left"
    return table


@dataclass
class Story:
    """Steps, live sections, static sections and the verdict, on one console."""

    console: Console
    live: bool  # redraw in place (a terminal, not --once, not CI)
    capture: Path | None = None
    _live: Live | None = None
    _started: float = field(default_factory=time.monotonic)
    _printed: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = field(default_factory=dict)
    _widths: dict[str, list[int]] = field(default_factory=dict)

    def step(self, text: str) -> None:
        self._print(Text.assemble(("==> ", "bold blue"), text))

    def detail(self, text: str) -> None:
        self._print(Text("    " + text))

    def show(self, *sections: Section) -> None:
        """Tables printed once (a summary)."""
        self.stop_watching()
        for section in sections:
            self.console.print()
            self.console.print(render(section))

    def watch(self, sections: Sequence[Section]) -> None:
        """The sections being waited on, as they are now: redrawn, or their changed rows."""
        if self.live:
            view = Group(*(render(s) for s in sections))
            if self._live is None:
                self._live = Live(view, console=self.console, auto_refresh=False)
                self._live.start()
            self._live.update(view, refresh=True)
            return
        for section in sections:
            self._changed_rows(section)

    def stop_watching(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def verdict(self, code: int, text: str) -> None:
        self.stop_watching()
        word = "PASS" if code == 0 else "FAIL"
        self.console.print()
        self.console.print(
            Text.assemble((word, _STYLES[word]), f": {text} (exit code {code})"), soft_wrap=True
        )

    def close(self) -> None:
        self.stop_watching()
        if self.capture is None:
            return
        # export_* clear the record by default: keep it for the second export.
        text = self.console.export_text(clear=False)
        if self.capture.suffix == ".svg":
            svg = self.console.export_svg(title="chaingate demo")
            # A capture loads nothing from the network: the local monospace font will do.
            self.capture.write_text(_REMOTE_FONTS.sub("", svg))
            self.capture.with_suffix(".txt").write_text(text)  # the same run, greppable
        else:
            self.capture.write_text(text)

    # --- plain mode ------------------------------------------------------------------------
    def _changed_rows(self, section: Section) -> None:
        least = section.widths or (0,) * len(section.columns)
        widths = self._widths.setdefault(
            section.title, [max(len(c), w) for c, w in zip(section.columns, least, strict=True)]
        )
        for row in section.rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        first = not any(k[0] == section.title for k in self._printed)
        if first:
            self._print(Text(f"    {section.title}", style="bold"))
            self._print(Text("    " + self._line(section, section.columns, widths)))
        for row in section.rows:
            key = (section.title, row[: section.key_columns])
            if self._printed.get(key) != row:
                self._printed[key] = row
                elapsed = time.monotonic() - self._started
                self._print(Text(f"    {self._line(section, row, widths)}   [{elapsed:5.1f} s]"))

    @staticmethod
    def _line(section: Section, row: Sequence[str], widths: list[int]) -> str:
        cells = [
            cell.rjust(w) if name in section.right else cell.ljust(w)
            for name, cell, w in zip(section.columns, row, widths, strict=True)
        ]
        return "  ".join(cells).rstrip()

    def _print(self, text: Text) -> None:
        if self._live is not None:
            self._live.console.print(text, soft_wrap=True)  # above the live tables
        else:
            self.console.print(text, soft_wrap=True)


def shown(path: Path) -> str:
    """A path relative to the working directory when it is below it (shorter to read)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def story_for(out: TextIO, *, once: bool = False, capture: Path | None = None) -> Story:
    """Live redraws only on a terminal, outside CI, without ``--once``."""
    terminal = out.isatty()
    live = terminal and not once and not os.environ.get("CI")
    console = Console(
        file=out,
        record=capture is not None,
        force_terminal=terminal or None,
        width=None if terminal else _WIDTH,
        no_color=not terminal and capture is None,
        highlight=False,
    )
    return Story(console, live, capture)
