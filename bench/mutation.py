"""Mutation testing of the modules that guard a release, one module at a time.

    python bench/mutation.py                      # every module in the table, then a score table
    python bench/mutation.py build/zipper.py elf.py --max-children 2
    python bench/mutation.py --list               # the modules and the tests each one runs
    python bench/mutation.py elf.py --survivors   # also print each survivor's diff

The modules, the fast test files that guard each one and an optional mutant-name filter are
read from ``[tool.layer-builder.mutation]`` in pyproject.toml; mutmut's own settings from
``[tool.mutmut]``. Each module runs in its own work directory (``.mutation/<module>/``, kept so
that ``cd .mutation/<module> && mutmut show NAME`` works and a re-run reuses the verdicts of
unchanged functions), with ``only_mutate`` and the test selection narrowed to that module:
mutmut then runs, for each mutant, only those of the module's tests that call the mutated
function. Needs the ``dev`` extra (mutmut). Not part of CI: a full run takes tens of minutes.
Details and the surviving mutants judged equivalent: docs/mutation-testing.md.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    from tomllib import loads as toml_loads
else:  # mutmut itself depends on `toml` before Python 3.11
    from toml import loads as toml_loads

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "layer_builder"
# Linked into each work directory: what mutmut copies and what the tests read.
LINKED = ("layer_builder", "tests", "configs", "extensions", "layer_src")
# mutmut's verdicts that count as the tests noticing the mutant.
DETECTED = {"killed", "timeout", "segfault", "caught by type check"}
NOT_COUNTED = {"skipped", "not checked"}


@dataclass
class Module:
    path: str  # relative to layer_builder/, e.g. "build/zipper.py"
    tests: list[str]
    names: list[str] = field(default_factory=list)  # mutmut name globs; empty = whole module

    @property
    def dotted(self) -> str:
        return f"{PACKAGE}." + self.path.removesuffix(".py").replace("/", ".")

    @property
    def workdir_name(self) -> str:
        return self.path.removesuffix(".py").replace("/", "-")


def load_settings() -> tuple[dict[str, object], list[Module]]:
    data = toml_loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    mutmut = dict(data["tool"]["mutmut"])
    table = data["tool"]["layer-builder"]["mutation"]["modules"]
    modules = [
        Module(path=path, tests=list(spec["tests"]), names=list(spec.get("names", [])))
        for path, spec in table.items()
    ]
    return mutmut, modules


def existing_tests(module: Module) -> list[str]:
    """The module's test files that exist now (globs allowed, missing ones skipped)."""
    found: list[str] = []
    for pattern in module.tests:
        for match in sorted(glob.glob(pattern, root_dir=ROOT)):
            if match not in found:
                found.append(match)
    return found


def _toml_value(value: object) -> str:
    # Only strings, numbers, booleans and lists of strings occur in [tool.mutmut]; JSON
    # spells those the way TOML does.
    return json.dumps(value)


def write_workdir_pyproject(workdir: Path, mutmut: dict[str, object], module: Module) -> None:
    """pyproject.toml for one module: the project's, with [tool.mutmut] narrowed to it."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    # Drop the project's [tool.mutmut] table (up to the next table header) and append ours.
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text)
    settings = dict(mutmut)
    settings["only_mutate"] = [f"{PACKAGE}/{module.path}"]
    settings["pytest_add_cli_args_test_selection"] = existing_tests(module)
    lines = ["", "[tool.mutmut]"] + [f"{k} = {_toml_value(v)}" for k, v in settings.items()]
    (workdir / "pyproject.toml").write_text(text + "\n".join(lines) + "\n", encoding="utf-8")


def prepare(module: Module, mutmut: dict[str, object], base: Path, fresh: bool) -> Path:
    workdir = base / module.workdir_name
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        link = workdir / name
        if not link.exists():
            link.symlink_to(ROOT / name, target_is_directory=True)
    write_workdir_pyproject(workdir, mutmut, module)
    _refresh_copies(workdir / "mutants")
    return workdir


def _refresh_copies(mutants: Path) -> None:
    """Bring mutmut's kept copy up to date with what it does not refresh by itself.

    mutmut re-copies the package's Python files when they change, but not its data files
    (``schemas/*.json``) nor the tests it copied on an earlier run: a stale schema made the
    unmutated tests fail after a merge. Copy every such file that differs.
    """
    if not mutants.is_dir():
        return  # mutmut makes it on its first run
    # Test files removed or moved since the copy was made would linger there (and shadow a
    # package of the same name), so the copy of tests/ keeps only what exists now.
    for old in sorted((mutants / "tests").rglob("*"), reverse=True):
        if "__pycache__" in old.parts or (ROOT / old.relative_to(mutants)).exists():
            continue
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    for name in LINKED:
        for src in (ROOT / name).rglob("*"):
            if not src.is_file() or "__pycache__" in src.parts:
                continue
            if name == PACKAGE and src.suffix == ".py":
                continue  # mutmut's own business: it writes the mutated versions
            dst = mutants / src.relative_to(ROOT)
            if not dst.exists() or dst.read_bytes() != src.read_bytes():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)


def mutmut_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "mutmut", *args]


def run_module(module: Module, workdir: Path, max_children: int, log: Path) -> float:
    names = [f"{module.dotted}.{n}" for n in module.names]
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        # mutmut reads its config from the current directory, so it runs inside the work dir.
        # PYTHONPATH is cleared so a subprocess cannot import the unmutated tree first.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        subprocess.run(
            mutmut_cmd("run", "--max-children", str(max_children), *names),
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        )
    return time.monotonic() - started


def verdicts(module: Module, workdir: Path) -> dict[str, str]:
    """mutant name -> mutmut's verdict, for this module's mutants (and name filter)."""
    proc = subprocess.run(
        mutmut_cmd("results", "--all", "true"),
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    prefix = module.dotted + "."
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if not sep or not name.startswith(prefix):
            continue
        if module.names and not any(
            re.fullmatch(fnmatch_to_regex(prefix + n), name) for n in module.names
        ):
            continue
        out[name] = status
    return out


def fnmatch_to_regex(pattern: str) -> str:
    import fnmatch

    return fnmatch.translate(pattern)


def load_equivalent() -> dict[str, str]:
    """Mutants judged equivalent (no test can tell them apart): bench/mutation-equivalent.txt."""
    path = ROOT / "bench" / "mutation-equivalent.txt"
    out: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, reason = line.partition(" ")
                out[name] = reason.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("modules", nargs="*", help="paths under layer_builder/ (default: all)")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutants (2)")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".mutation")
    parser.add_argument("--fresh", action="store_true", help="forget earlier verdicts")
    parser.add_argument("--list", action="store_true", help="show the module table and stop")
    parser.add_argument("--report-only", action="store_true", help="table from the last runs")
    parser.add_argument("--survivors", action="store_true", help="print each survivor's diff")
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = parser.parse_args(argv)

    mutmut, modules = load_settings()
    if args.modules:
        wanted = {m.removeprefix(f"{PACKAGE}/") for m in args.modules}
        unknown = wanted - {m.path for m in modules}
        if unknown:
            parser.error(f"not in [tool.layer-builder.mutation.modules]: {sorted(unknown)}")
        order = [m.removeprefix(f"{PACKAGE}/") for m in args.modules]
        modules = sorted(
            (m for m in modules if m.path in wanted), key=lambda m: order.index(m.path)
        )
    missing = [m for m in modules if not (ROOT / PACKAGE / m.path).exists()]
    for m in missing:
        print(f"skip {m.path}: no such module (yet)", file=sys.stderr)
    modules = [m for m in modules if m not in missing]

    if args.list:
        empty = [m.path for m in modules if not existing_tests(m)]
        for m in modules:
            names = f"  names: {', '.join(m.names)}" if m.names else ""
            tests = " ".join(existing_tests(m)) or "NO TESTS (no path or glob matches)"
            print(f"{m.path}: {tests}{names}")
        return 1 if empty else 0

    equivalent = load_equivalent()
    rows = []
    for m in modules:
        workdir = prepare(m, mutmut, args.workdir, args.fresh)
        seconds = 0.0
        if not args.report_only:
            print(f"== {m.path}: {' '.join(existing_tests(m))}", file=sys.stderr, flush=True)
            seconds = run_module(m, workdir, args.max_children, workdir / "mutmut.log")
        found = verdicts(m, workdir)
        counts: dict[str, int] = {}
        for status in found.values():
            counts[status] = counts.get(status, 0) + 1
        counted = {n: s for n, s in found.items() if s not in NOT_COUNTED}
        detected = sum(1 for s in counted.values() if s in DETECTED)
        survivors = sorted(n for n, s in counted.items() if s not in DETECTED)
        equiv = [n for n in survivors if n in equivalent]
        # A listed name that no longer survives: killed by a newer test, or (after a change to
        # its function) a renumbered name that may now point at another mutant. Re-judge it.
        prefix = m.dotted + "."
        for name in sorted(n for n in equivalent if n.startswith(prefix) and n in counted):
            if name not in survivors:
                print(
                    f"stale: {name} is listed in bench/mutation-equivalent.txt but was "
                    f"{counted[name]}; check its diff (mutmut show) and the list",
                    file=sys.stderr,
                )
        rows.append(
            {
                "module": m.path,
                "mutants": len(counted),
                "killed": detected,
                "survived": len(survivors),
                "no_tests": counts.get("no tests", 0),
                "equivalent": len(equiv),
                "not_run": counts.get("not checked", 0),
                "score": detected / len(counted) if counted else None,
                "score_excl_equivalent": (
                    detected / (len(counted) - len(equiv)) if len(counted) > len(equiv) else None
                ),
                "seconds": round(seconds, 1),
                "survivors": [n for n in survivors if n not in equivalent],
            }
        )
        if args.survivors:
            for name in survivors:
                if name in equivalent:
                    continue
                show = subprocess.run(
                    mutmut_cmd("show", name), cwd=workdir, capture_output=True, text=True
                )
                print(show.stdout)

    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


def _pct(value: object) -> str:
    return f"{value * 100:.1f} %" if isinstance(value, float) else "-"


def print_table(rows: list[dict[str, object]]) -> None:
    header = (
        "| module | mutants | killed | survived | of which no test | equivalent | score "
        "| score excl. equivalent | not run yet | time |"
    )
    print(header)
    print("| --- " * 10 + "|")
    totals = {
        "mutants": 0,
        "killed": 0,
        "survived": 0,
        "no_tests": 0,
        "equivalent": 0,
        "not_run": 0,
    }
    for r in rows:
        for k in totals:
            totals[k] += int(r[k])  # type: ignore[call-overload]
        print(
            f"| {r['module']} | {r['mutants']} | {r['killed']} | {r['survived']} "
            f"| {r['no_tests']} | {r['equivalent']} | {_pct(r['score'])} "
            f"| {_pct(r['score_excl_equivalent'])} | {r['not_run']} | {r['seconds']} s |"
        )
    if len(rows) > 1 and totals["mutants"]:
        score = totals["killed"] / totals["mutants"]
        rest = totals["mutants"] - totals["equivalent"]
        excl = totals["killed"] / rest if rest else None
        print(
            f"| **all** | {totals['mutants']} | {totals['killed']} | {totals['survived']} "
            f"| {totals['no_tests']} | {totals['equivalent']} | {_pct(score)} | {_pct(excl)} "
            f"| {totals['not_run']} | |"
        )


if __name__ == "__main__":
    sys.exit(main())
