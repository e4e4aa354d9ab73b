"""Smoke-test one layer zip: which architectures can run here, the runs, the verdict.

For each architecture the zip serves that this machine can run, the function runs twice in
fresh environments: once bare (empty ``/opt``, the handler called directly) for the cold-start
comparison, then with the layer and the SDK enabled as users enable it, against the fake
Sentry. Only the run with the layer decides pass or fail.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layer_builder.aws.facts import ELF_MACHINE, MACHINE_NAME
from layer_builder.elf import read_elf_header
from layer_builder.errors import ArgumentError, ArtifactError
from layer_builder.smoke import runtimes
from layer_builder.smoke.api import Invocation, serve_api
from layer_builder.smoke.environment import prepare, unpack_layer
from layer_builder.smoke.lifecycle import Limits, run_environment
from layer_builder.smoke.report import RunRecord, SmokeFailed, ZipReport
from layer_builder.smoke.sentry import FakeSentry, fake_sentry

log = logging.getLogger(__name__)

_LOG_LINES = 200
_SENTRY_WAIT_S = 5.0


@dataclass(frozen=True)
class SmokeOptions:
    runtime: str | None = None  # None: from the layer's top-level directory
    function_dir: Path | None = None  # None: the sample function
    handler: str | None = None
    event: bytes | None = None  # None: a small event per invocation
    invocations: int = 3
    baseline: bool = True
    architectures: tuple[str, ...] = ()  # only these of the zip's (default: all it serves)
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if (self.function_dir is None) != (self.handler is None):
            raise ArgumentError("--function and --handler go together")
        if self.function_dir is not None and not self.function_dir.is_dir():
            raise ArgumentError(f"--function: {self.function_dir} is not a directory")
        if self.function_dir is None and self.invocations < 2:
            raise ArgumentError(
                "--invocations: the sample function needs at least 2 (one returns, one raises)"
            )


def host_architecture() -> str:
    machine = runtimes.host_machine()
    return next((a for a, m in MACHINE_NAME.items() if m == machine), machine)


def zip_architectures(zip_path: Path) -> list[str]:
    """What the zip serves: its build manifest, else the ELF files in it, else the host's."""
    manifest = zip_path.with_name(zip_path.name + ".json")
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text())
            archs = data.get("architectures") or [data["architecture"]]
            return sorted({str(a) for a in archs}, key=lambda a: a != "x86_64")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            log.debug("%s: no architecture in the manifest; looking at the ELF files", manifest)
    by_machine = {m: a for a, m in ELF_MACHINE.items()}
    found: set[str] = set()
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for info in zf.infolist():
                if not info.is_dir() and info.file_size >= 64:
                    with zf.open(info) as f:
                        header = read_elf_header(f.read(64))
                    if header is not None and header.e_machine in by_machine:
                        found.add(by_machine[header.e_machine])
    except (OSError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{zip_path}: not a readable zip: {exc}") from None
    return sorted(found, key=lambda a: a != "x86_64") or [host_architecture()]


def _events(options: SmokeOptions) -> list[bytes]:
    if options.event is not None:
        return [options.event] * options.invocations
    return [
        json.dumps({"layer-builder": "smoke", "n": n}).encode()
        for n in range(1, options.invocations + 1)
    ]


def _sample_check(events: list[bytes]):  # type: ignore[no-untyped-def]
    def check(number: int, inv: Invocation) -> str | None:
        if number % 2 == 0:
            got = (inv.error or {}).get("errorType")
            return (
                None
                if got == runtimes.SAMPLE_ERROR
                else f"expected the sample's {runtimes.SAMPLE_ERROR}, got {got or 'a response'}"
            )
        want = {
            "ok": True,
            "invocation": number,
            "requestId": inv.request_id,
            "event": json.loads(events[number - 1]),
        }
        try:
            got_resp = json.loads(inv.response or b"null")
        except ValueError:
            got_resp = None
        if got_resp != want:
            shown = inv.error or (inv.response or b"").decode(errors="replace")[:200]
            return f"expected the sample's answer {json.dumps(want)}, got {shown}"
        return None

    return check


def _accept_any(number: int, inv: Invocation) -> str | None:
    return None  # the user's function: any answer is its own business (load errors aside)


def _sentry_check(sentry: FakeSentry):  # type: ignore[no-untyped-def]
    def after(record: RunRecord) -> None:
        for inv in record.invocations:
            if inv.outcome != "error" or not inv.error_type:
                continue
            if not sentry.wait_for_exception(inv.error_type, _SENTRY_WAIT_S):
                seen = [t for e in sentry.events() for t in e.exception_types]
                raise SmokeFailed(
                    "sentry",
                    f"the {inv.error_type} raised by invocation {inv.number} did not reach "
                    f"Sentry within {_SENTRY_WAIT_S:g} s (events received: {seen or 'none'})",
                )

    return after


def _read_logs(record: RunRecord, prefix: str) -> dict[str, str]:
    out = {}
    for name, path in record.logs.items():
        try:
            lines = Path(path).read_text(errors="replace").splitlines()[-_LOG_LINES:]
        except OSError:
            lines = []
        out[f"{prefix}{name}"] = "\n".join(lines)
    return out


def _one_run(
    layer_dir: Path | None,
    options: SmokeOptions,
    runtime_name: str,
    work: Path,
    sentry: FakeSentry,
    foreign: runtimes.Foreign | None = None,
) -> tuple[RunRecord, str]:
    """One fresh environment: the unpacked layer (``layer_dir``) or the bare function (None)."""
    task = work / "task"
    shutil.copytree(options.function_dir or runtimes.sample_function(runtime_name), task)
    handler = options.handler or runtimes.SAMPLE_HANDLER
    env = prepare(layer_dir, work, runtimes.needed_tools(runtime_name), foreign)
    try:
        with serve_api(handler) as api:
            runtime = runtimes.start_spec(
                runtime_name, work, env.opt, task, handler, layer_dir is not None
            )
            base = runtimes.lambda_env(
                api=api.address, task_root=task, handler=runtime.env["_HANDLER"], dsn=sentry.dsn
            )
            base["PATH"] = env.path_prefix + base["PATH"]
            events = _events(options)
            check = _accept_any if options.function_dir else _sample_check(events)
            after = _sentry_check(sentry) if layer_dir is not None else None
            record = run_environment(
                env, api, runtime, base, events, work, options.limits, check, after
            )
            return record, f"{runtime.label}; layer {env.mount}"
    finally:
        env.close()


def _sentry_summary(sentry: FakeSentry) -> list[dict[str, Any]]:
    return [{"type": i.type, "exceptions": i.exception_types} for i in sentry.events()]


def smoke_zip(zip_path: Path, options: SmokeOptions) -> list[ZipReport]:
    """Smoke-test ``zip_path`` for every architecture it serves; one report each."""
    if not zip_path.is_file():
        raise ArgumentError(f"{zip_path}: no such file")
    host = host_architecture()
    listed = zip_architectures(zip_path)
    if options.architectures:
        listed = [a for a in listed if a in options.architectures]
    archs = sorted(listed, key=lambda a: a != host)
    reports = []
    # One unpacked tree serves every architecture's run (it is mounted read-only); the host's
    # run comes first because playing another machine puts qemu shims into the tree.
    with tempfile.TemporaryDirectory(prefix="layer-builder-smoke-") as tmp:
        layer_dir = Path(tmp) / "layer"
        for arch in archs:
            foreign = None
            if arch != host:
                foreign = runtimes.other_arch_runner(arch)
                if foreign is None:
                    why = (f"this machine is {host} and qemu-user for {arch} is not installed "
                           "(Debian: qemu-user)")  # fmt: skip
                    reports.append(ZipReport(str(zip_path), arch, "skipped", cause=why))
                    continue
            if not layer_dir.exists():
                unpack_layer(zip_path, layer_dir)
            reports.append(_smoke_arch(zip_path, layer_dir, arch, options, foreign))
    return sorted(reports, key=lambda r: listed.index(r.architecture))


def _smoke_arch(
    zip_path: Path,
    layer_dir: Path,
    arch: str,
    options: SmokeOptions,
    foreign: runtimes.Foreign | None = None,
) -> ZipReport:
    report = ZipReport(str(zip_path), arch, "failed")
    with tempfile.TemporaryDirectory(prefix="layer-builder-smoke-") as tmp, fake_sentry() as sentry:
        work = Path(tmp)
        runtime_name = runtimes.detect(layer_dir, options.runtime)
        report.runtime = runtime_name
        if options.baseline:
            (work / "bare").mkdir()
            bare, _ = _one_run(None, options, runtime_name, work / "bare", sentry)
            report.baseline = bare.timings
            report.logs.update(_read_logs(bare, "bare/"))
            if bare.failure is not None:
                report.baseline = None
                report.baseline_note = (
                    f"no comparison: the function without the layer failed ({bare.failure})"
                )
        (work / "layer").mkdir()
        sentry.items.clear()
        record, label = _one_run(layer_dir, options, runtime_name, work / "layer", sentry, foreign)
        report.mount = label
        report.logs.update(_read_logs(record, ""))
        report.extensions, report.invocations = record.extensions, record.invocations
        report.timings = record.timings
        report.sentry_events = _sentry_summary(sentry)
        if record.failure is not None:
            report.phase, report.cause = record.failure.phase, record.failure.cause
        else:
            report.status = "passed"
    return report
