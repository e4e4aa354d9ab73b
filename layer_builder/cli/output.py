"""Terminal output: rich tables and live progress on a terminal, plain lines in CI logs.

Only the CLI uses this module; the library reports through return values, logging and
progress callbacks.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

from layer_builder.model import RegionResult


def mb(n: int) -> str:
    """Bytes as megabytes for people: ``12.3 MB``."""
    return f"{n / 1e6:.1f} MB"


class UI:
    def __init__(self, *, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        # Human output goes to stderr when stdout carries JSON, so programs can parse stdout.
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.out = Console(highlight=False, soft_wrap=True)
        for console in (self.err, self.out):
            if not console.is_terminal:
                # A CI log has no width; wrapping ARNs over four lines helps nobody.
                console.width = 240
        self.human = self.err if json_mode else self.out
        self.interactive = self.human.is_terminal and not os.environ.get("CI")
        self._lock = threading.Lock()

    def info(self, message: str) -> None:
        if not self.quiet:
            with self._lock:
                self.human.print(message, markup=False)

    def note(self, message: str) -> None:
        """A highlighted line (e.g. the sandbox label)."""
        if not self.quiet:
            with self._lock:
                self.human.print(f"[bold yellow]{message}[/]")

    def error(self, message: str) -> None:
        # One line, no markup interpretation: messages may contain brackets.
        print(f"error: {message}", file=sys.stderr, flush=True)

    def emit_json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        sys.stdout.flush()

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self.quiet:
            return
        table = Table(title=title, title_justify="left", show_lines=False)
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        with self._lock:
            self.human.print(table)

    @contextmanager
    def status(self, message: str) -> Iterator[None]:
        """A spinner on a terminal; one line in a log."""
        if self.interactive and not self.quiet:
            with self.human.status(message):
                yield
        else:
            self.info(message)
            yield

    @contextmanager
    def region_progress(self, total: int) -> Iterator[Any]:
        """Live per-region progress: a bar on a terminal, one line per result in CI."""
        done = {"n": 0}

        def line(r: RegionResult) -> str:
            what = f"{r.status}" + (f" v{r.version}" if r.version is not None else "")
            if r.error:
                what += f": {r.error}"
            archs = ", ".join(r.architectures)
            return f"{r.region:<16} {r.layer_name} ({archs}) {what} ({r.seconds:.1f}s)"

        if self.interactive and not self.quiet:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            with Progress(
                TextColumn("publishing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.human,
                transient=False,
            ) as prog:
                task = prog.add_task("regions", total=total)

                def update(r: RegionResult) -> None:
                    with self._lock:
                        if not r.ok:
                            prog.console.print(f"[red]failed[/] {line(r)}", markup=True)
                        prog.advance(task)

                yield update
        else:

            def plain(r: RegionResult) -> None:
                done["n"] += 1
                self.info(f"[{done['n']}/{total}] {line(r)}")

            yield plain
