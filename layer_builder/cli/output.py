"""Terminal output: rich tables and a live bar on a terminal, plain lines in CI logs.

Only the CLI uses this module; the library reports through return values, logging and
progress callbacks. The rules every command inherits from here:

- progress lines say what is happening (``x86_64: installing sentry-sdk 2.75.0``), one line
  per step in a log, a spinner or bar on a terminal;
- the end of a command is ONE summary table, not a repeat of the progress lines;
- tables fit the width (the terminal's; in a log ``$COLUMNS`` or 100): long cells are
  shortened in the middle (``arn:aws:lambda:...:layer:Name:12``) instead of folding;
- with ``--json`` stdout carries exactly one JSON document (a failure's has ``error`` and
  ``exit_code``); everything for people goes to stderr;
- a line never claims what did not happen (the registry outcome is what the writer did).
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from layer_builder.model import PublishResult, RegionResult
from layer_builder.publish.fanout import NOT_STARTED

#: Width of a plain (non-terminal) log when $COLUMNS does not say: fits a CI log view.
LOG_WIDTH = 100
_MIN_CELL = 10
_ELLIPSIS = "..."


def failed_lines(failed: Sequence[RegionResult], *, shown: int = 6) -> list[str]:
    """Failed regions grouped by layer and reason: one line per group, a few regions named.

    Twenty regions failing for one reason (an interrupt, a credential) read as one line.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for r in failed:
        groups.setdefault((r.layer_name, r.error or "no reason given"), []).append(r.region)
    lines = []
    for (layer, reason), regions in groups.items():
        if len(regions) == 1:
            lines.append(f"{regions[0]} {layer}: {reason}")
            continue
        names = ", ".join(sorted(regions)[:shown])
        more = f", and {len(regions) - shown} more" if len(regions) > shown else ""
        lines.append(f"{layer} in {len(regions)} regions ({names}{more}): {reason}")
    return lines


def mb(n: int) -> str:
    """Bytes as megabytes for people: ``12.3 MB``."""
    return f"{n / 1e6:.1f} MB"


def shorten(text: str, width: int) -> str:
    """``text`` cut in the middle to ``width`` characters: both ends of an ARN or path matter."""
    if len(text) <= width:
        return text
    if width <= len(_ELLIPSIS) + 2:
        return text[:width]
    keep = width - len(_ELLIPSIS)
    head = keep // 2
    return text[:head] + _ELLIPSIS + text[len(text) - (keep - head) :]


#: A path, URL or ARN is shortened to no less than this to save a line from wrapping...
_TOKEN_FLOOR = 40
#: ...and to no more than this on a line that wraps anyway.
_TOKEN_CAP = 70


def fit_line(text: str, width: int, *, indent: str = "    ") -> list[str]:
    """``text`` as lines of at most ``width`` columns: the longest tokens (paths, URLs, ARNs)
    shortened in the middle first (both ends tell which file), and if that is not enough,
    words wrapped, the continuation lines indented below the first."""
    if len(text) <= width:
        return [text]
    tokens = text.split(" ")
    while True:
        excess = len(" ".join(tokens)) - width
        long = [i for i, t in enumerate(tokens) if len(t) > _TOKEN_FLOOR]
        if excess <= 0 or not long:
            break
        i = max(long, key=lambda k: len(tokens[k]))
        tokens[i] = shorten(tokens[i], max(_TOKEN_FLOOR, len(tokens[i]) - excess))
    if excess <= 0:
        return [" ".join(tokens)]
    cap = min(_TOKEN_CAP, width - len(indent))
    line = " ".join(shorten(t, cap) for t in text.split(" "))
    lead = line[: len(line) - len(line.lstrip(" "))]
    return textwrap.wrap(
        line,
        width,
        subsequent_indent=lead + indent,
        break_long_words=True,
        break_on_hyphens=False,
    )


def fit_columns(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int,
    *,
    elastic: Sequence[str] = (),
    gap: int = 2,
) -> list[int]:
    """Column widths that fit ``width``.

    The columns named in ``elastic`` give way first, in the order named (the least telling
    first), each down to a minimum; then all columns, the widest one character at a time.
    """
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    floor = [min(w, max(len(c), _MIN_CELL)) for w, c in zip(widths, columns, strict=True)]
    excess = sum(widths) + gap * (len(widths) - 1) - width
    for name in elastic:
        if excess > 0 and name in columns:
            i = list(columns).index(name)
            give = min(excess, widths[i] - floor[i])
            widths[i] -= give
            excess -= give
    while excess > 0:
        room = [i for i in range(len(widths)) if widths[i] > floor[i]]
        if not room:
            break
        i = max(room, key=lambda k: widths[k])
        widths[i] -= 1
        excess -= 1
    # If even the floors do not fit, the line runs long rather than losing the headers.
    return widths


class UI:
    """Everything the CLI shows. ``terminal``/``width`` override detection (tests, goldens)."""

    def __init__(
        self,
        *,
        json_mode: bool = False,
        quiet: bool = False,
        defer_json: bool = False,
        terminal: bool | None = None,
        width: int | None = None,
    ) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        # main() holds the JSON document back so a failure can add error/exit_code to it:
        # stdout then carries one document, whatever happened.
        self.defer_json = defer_json
        self._json_doc: Any = None
        self._json_written = False
        # Human output goes to stderr when stdout carries JSON, so programs can parse stdout.
        self.human = Console(
            stderr=json_mode, highlight=False, soft_wrap=True, force_terminal=terminal
        )
        if width is not None:
            self.human.width = width
        elif not self.human.is_terminal:
            self.human.width = _env_width() or LOG_WIDTH
        self.interactive = self.human.is_terminal and not os.environ.get("CI")
        #: In CI every line fits the width (a log viewer does not scroll sideways).
        self.fit = bool(os.environ.get("CI"))
        self._lock = threading.Lock()

    @property
    def width(self) -> int:
        return int(self.human.width)

    # -- lines ---------------------------------------------------------------------------

    def _fitted(self, message: str, indent: str = "    ") -> list[str]:
        if not self.fit:
            return [message]
        return [
            part
            for line in message.splitlines()
            for part in fit_line(line, self.width, indent=indent)
        ]

    def info(self, message: str) -> None:
        if not self.quiet:
            with self._lock:
                for line in self._fitted(message):
                    self.human.print(line, markup=False)

    def note(self, message: str) -> None:
        """A highlighted line (e.g. the sandbox label); in CI fitted like every line."""
        if not self.quiet:
            with self._lock:
                for line in self._fitted(message):
                    self.human.print(line, style="bold yellow", markup=False)

    def error(self, message: str) -> None:
        # One ``error:`` line per line of the message (verify reports several problems), no
        # markup interpretation: messages may contain brackets. In CI a long one is fitted:
        # its continuation lines are indented under the message, never a new ``error:``.
        for line in message.splitlines() or [""]:
            for part in self._fitted(f"error: {line}", indent="       "):
                print(part, file=sys.stderr, flush=True)

    # -- JSON ----------------------------------------------------------------------------

    def emit_json(self, data: Any) -> None:
        if self.defer_json:
            self._json_doc = data
        else:
            self._write_json(data)

    def flush_json(self, *, error: str | None = None, exit_code: int = 0) -> None:
        """Write the held document; on failure (with --json) add ``error``/``exit_code``.

        A command that prints JSON without --json (``registry show``) still gets its
        document; a failure adds a JSON document only when --json asked for one.
        """
        if self._json_written:
            return
        doc = self._json_doc
        if error is not None:
            if not self.json_mode:
                return
            doc = {**doc} if isinstance(doc, dict) else {}
            doc.update(error=error, exit_code=exit_code)
        if doc is not None:
            self._write_json(doc)

    def fail(self, message: str, exit_code: int) -> int:
        """Report a failure on stderr (and stdout with --json); returns ``exit_code``."""
        self.error(message)
        self.flush_json(error=message, exit_code=exit_code)
        return exit_code

    def _write_json(self, data: Any) -> None:
        self._json_written = True
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        sys.stdout.flush()

    # -- tables --------------------------------------------------------------------------

    def table(
        self,
        title: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        right: Sequence[str] = (),
        elastic: Sequence[str] = (),
    ) -> None:
        """A summary table that fits the width: rich on a terminal, aligned text in a log.

        Columns named in ``right`` are right-aligned (numbers, sizes); those in ``elastic``
        are shortened (in a log) or wrapped (on a terminal) first when space runs out.
        """
        if self.quiet:
            return
        cells = [["" if v is None else str(v) for v in row] for row in rows]
        if self.human.is_terminal:
            # The same fitting as in a log, so a cell is shortened in the middle (keeping
            # an ARN's version or a layer's -arm64) rather than folded mid-word. A rich
            # table spends 3 columns per cell on padding and borders, plus 1.
            widths = fit_columns(columns, cells, self.width - 4, elastic=elastic, gap=3)
            table = Table(title=title, title_justify="left", show_lines=False)
            for col, w in zip(columns, widths, strict=True):
                table.add_column(
                    col, width=w, no_wrap=True, justify="right" if col in right else "left"
                )
            for row in cells:
                table.add_row(*(shorten(v, w) for v, w in zip(row, widths, strict=True)))
            with self._lock:
                self.human.print(table)
            return
        widths = fit_columns(columns, cells, self.width, elastic=elastic)

        def line(values: Sequence[str]) -> str:
            parts = []
            for col, value, w in zip(columns, values, widths, strict=True):
                value = shorten(value, w)
                parts.append(value.rjust(w) if col in right else value.ljust(w))
            return "  ".join(parts).rstrip()

        out = [title, line(columns), "  ".join("-" * w for w in widths)]
        out += [line(row) for row in cells]
        with self._lock:
            for text in out:
                self.human.print(text, markup=False, overflow="ignore", crop=False)

    # -- progress ------------------------------------------------------------------------

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
        """Live per-region progress: a bar on a terminal, one line per result in a log.

        Failures are printed as they happen on both; everything else ends up in the summary.
        """
        done = {"n": 0}
        digits = len(str(total))

        if self.interactive and not self.quiet:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            with Progress(
                TextColumn("regions"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.human,
                transient=True,  # the summary table replaces it
            ) as prog:
                task = prog.add_task("regions", total=total)

                def update(r: RegionResult) -> None:
                    with self._lock:
                        if not r.ok:
                            prog.console.print(f"failed  {region_line(r)}", markup=False)
                        prog.advance(task)

                yield update
        else:

            def plain(r: RegionResult) -> None:
                with self._lock:
                    done["n"] += 1
                    n = done["n"]
                # Regions an interrupt kept from starting are summed up once at the end,
                # not announced one by one.
                if not self.quiet and r.error != NOT_STARTED:
                    self.info(f"[{n:>{digits}}/{total}] {region_line(r)}")

            yield plain

    # -- the ends of commands --------------------------------------------------------------

    def publish_summary(self, result: PublishResult) -> None:
        """One row per layer: how many regions are new, reused or failed, and the versions."""
        title = "dry run: nothing was published" if result.dry_run else "published layers"
        rows = []
        for layer_name, results in sorted(_by_layer(result.results).items()):
            counts = {
                s: sum(1 for r in results if _COUNTED_AS.get(r.status, r.status) == s)
                for s in _STATUS_ORDER
            }
            rows.append(
                [
                    layer_name,
                    f"{sum(1 for r in results if r.ok)}/{len(results)}",
                    *(str(counts[s]) for s in _STATUS_ORDER if _wanted(s, result.dry_run)),
                    _versions(results),
                ]
            )
        columns = [
            "layer",
            "regions ok",
            *(_STATUS_TITLES[s] for s in _STATUS_ORDER if _wanted(s, result.dry_run)),
            "versions",
        ]
        self.table(
            title,
            columns,
            rows,
            right=("regions ok", *_STATUS_TITLES.values()),
            elastic=("layer", "versions"),
        )
        ok = sorted((r.layer_name, r.region, r.arn) for r in result.results if r.arn)
        example = ok[0][2] if ok else None
        if example:
            # Every region's ARN is in --json and the registry; one shows the pattern.
            self.info(f"ARN e.g. {example}")
        for line in failed_lines(result.failed):
            self.info(f"failed: {line}")

    def registry_outcome(
        self, root: Path, version_file: Path, written: Sequence[Path], *, created: bool
    ) -> None:
        """What the registry writer really did: created, wrote N files, or changed nothing."""
        if created:
            self.info(f"registry: created the directory {root}")
        if not written:
            self.info(f"registry: unchanged; {version_file} already records this release")
            return
        self.info(f"registry: wrote {version_file}")
        # One short line each for the links that moved and the other files, so the lines
        # stay readable in a narrow log.
        links = [p.name for p in written if p != version_file and p.is_symlink()]
        others = [p.name for p in written if p != version_file and not p.is_symlink()]
        if links:
            self.info(f"registry: {', '.join(links)} now -> {version_file.name}")
        if others:
            self.info(f"registry: also wrote {', '.join(others)}")


_STATUS_ORDER = ("new", "reused", "planned-new", "planned-reuse", "failed")
# A dry run's reuse that would also add the permission counts as a reuse in the table.
_COUNTED_AS = {"planned-heal-permission": "planned-reuse"}
_STATUS_TITLES = {
    "new": "published",
    "reused": "reused",
    "failed": "failed",
    "planned-new": "would publish",
    "planned-reuse": "would reuse",
}


def _wanted(status: str, dry_run: bool) -> bool:
    return status == "failed" or status.startswith("planned-") == dry_run


def region_line(r: RegionResult) -> str:
    """One region's outcome in words; never claims more than the status says."""
    version = f"version {r.version}" if r.version is not None else ""
    what = {
        "new": f"published {version}",
        "reused": f"reused {version} (already published)",
        "planned-new": "would publish a new version",
        "planned-reuse": f"would reuse {version}",
        "planned-heal-permission": f"would reuse {version} and add its permission statements",
        "failed": f"FAILED: {r.error or 'no reason given'}",
    }.get(r.status, r.status)
    return f"{r.region:<15} {r.layer_name}: {what} ({r.seconds:.1f} s)"


def _by_layer(results: Sequence[RegionResult]) -> dict[str, list[RegionResult]]:
    out: dict[str, list[RegionResult]] = {}
    for r in results:
        out.setdefault(r.layer_name, []).append(r)
    return out


def _versions(results: Sequence[RegionResult]) -> str:
    """``12`` when every region has the same version, else ``12 (18), 13 (2)``; ``-`` if none."""
    counts: dict[int, int] = {}
    for r in results:
        if r.version is not None:
            counts[r.version] = counts.get(r.version, 0) + 1
    if not counts:
        return "-"
    if len(counts) == 1:
        return str(next(iter(counts)))
    return ", ".join(f"{v} ({n})" for v, n in sorted(counts.items()))


def _env_width() -> int | None:
    try:
        value = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        return None
    return value if value >= 40 else None
