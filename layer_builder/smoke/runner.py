"""Smoke-test one layer zip: which architectures can run here, the runs, the verdict.

For each architecture a function with the zip attached can have (every Lambda architecture
for a universal layer: Sentry attaches it whatever the function's architecture) that this
machine can run, the function runs in fresh environments: once bare (empty ``/opt``, the
handler called directly) for the cold-start comparison, then with the layer and the SDK
enabled as Sentry enables it (Node: once with ``-r``, once with ``--import``), against the
fake Sentry. Only the runs with the layer decide pass or fail.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layer_builder.aws.facts import ARCHITECTURES, ELF_MACHINE, MACHINE_NAME
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
EXTENSION_NAME = "sentry-lambda-extension"
#: The first line of the layer's extension launcher (extensions/relay-launcher.sh.j2).
LAUNCHER_MARKER = "# sentry-layer-extension:"
EXTENSION_PORT_ENV = "SENTRY_LAYER_EXTENSION_PORT"


@dataclass(frozen=True)
class SmokeOptions:
    runtime: str | None = None  # None: from the layer's top-level directory
    function_dir: Path | None = None  # None: the sample function
    handler: str | None = None
    event: bytes | None = None  # None: a small event per invocation
    invocations: int = 3
    baseline: bool = True
    architectures: tuple[str, ...] = ()  # only these of the zip's (default: all it serves)
    #: only these ways of enabling the layer (runtimes.enable_modes; default: every one)
    enable_modes: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if (self.function_dir is None) != (self.handler is None):
            raise ArgumentError("--function and --handler go together")
        if self.function_dir is not None and not self.function_dir.is_dir():
            raise ArgumentError(f"--function: {self.function_dir} is not a directory")
        if self.function_dir is None and self.invocations < 2:
            raise ArgumentError(
                "--invocations: the sample function needs at least 2 (the first raises, the "
                "second returns; the default 3 raises again on the third)"
            )


def host_architecture() -> str:
    machine = runtimes.host_machine()
    return next((a for a, m in MACHINE_NAME.items() if m == machine), machine)


def zip_architectures(zip_path: Path) -> list[str]:
    """The architectures of the functions the zip can be attached to.

    Its build manifest: a universal layer goes to every Lambda architecture (Sentry's
    integration attaches it whatever the function's architecture, also where it carries no
    extension binary), a per-arch layer to its own. Without a manifest: the ELF files in it,
    else the host's.
    """
    manifest = zip_path.with_name(zip_path.name + ".json")
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text())
            archs = data.get("architectures") or [data["architecture"]]
            if data.get("layout") == "universal":
                archs = list(ARCHITECTURES)
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
    """The sample raises on odd invocations (the cold one first) and answers on even ones."""

    def check(number: int, inv: Invocation) -> str | None:
        if number % 2 == 1:
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


def _sentry_check(sentry: FakeSentry, expected: str, work: Path):  # type: ignore[no-untyped-def]
    """Every invocation that raised: exactly one event naming its request id and exception.

    ``expected`` is the way the events must come (``extension`` or ``direct``). Only the
    sandbox stand-in is known to mark what it forwards, so with another extension (real
    Relay) the path is reported but not required.
    """

    def after(record: RunRecord) -> None:
        path = expected if expected == "direct" or _standin_registered(work) else None
        for inv in record.invocations:
            if inv.outcome != "error" or not inv.error_type:
                continue
            if not sentry.wait_for_event(inv.request_id, inv.error_type, _SENTRY_WAIT_S):
                seen = [t for e in sentry.events() for t in e.exception_types]
                raise SmokeFailed(
                    "sentry",
                    f"the {inv.error_type} raised by invocation {inv.number} "
                    f"(request {inv.request_id}) did not reach Sentry within "
                    f"{_SENTRY_WAIT_S:g} s (events received: {seen or 'none'})",
                )
        for inv in record.invocations:
            if inv.outcome != "error" or not inv.error_type:
                continue
            found = sentry.events_for(inv.request_id, inv.error_type)
            if len(found) != 1:
                raise SmokeFailed(
                    "sentry",
                    f"invocation {inv.number} raised once but Sentry received {len(found)} "
                    f"events for it",
                )
            if path is not None and found[0].path != path:
                how = (
                    "through the extension's local address"
                    if path == "extension"
                    else "directly (no extension forwards on this machine)"
                )
                raise SmokeFailed(
                    "sentry",
                    f"the event of invocation {inv.number} came {found[0].path}, not {how}",
                )

    return after


def expected_path(layer_dir: Path, machine: str) -> str:
    """How the layer's SDK sends on ``machine``: what the extension launcher's first line says."""
    launcher = layer_dir / "extensions" / EXTENSION_NAME
    try:
        lines = launcher.read_text(errors="replace").splitlines()[:20]
    except OSError:
        return "direct"
    for line in lines:
        if line.startswith(LAUNCHER_MARKER):
            fields = dict(w.split("=", 1) for w in line[len(LAUNCHER_MARKER) :].split() if "=" in w)
            return "extension" if machine in fields.get("machines", "").split(",") else "direct"
    return "direct"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lang_bin(work: Path, runtime: runtimes.Runtime) -> Path:
    """Lambda's /var/lang/bin (first on PATH there): the runtime's interpreter, for extensions."""
    lang = work / "lang-bin"
    lang.mkdir(exist_ok=True)
    name = "python3" if runtime.name == "python" else "node"
    link = lang / name
    if not link.exists():
        link.symlink_to(runtime.tools[0])
    return lang


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
    enable: str = "require",
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
            if runtime_name == "node":
                runtimes.node_enable(runtime, enable if layer_dir is not None else None)
            base = runtimes.lambda_env(
                api=api.address, task_root=task, handler=runtime.env["_HANDLER"], dsn=sentry.dsn
            )
            base["PATH"] = f"{env.path_prefix}{_lang_bin(work, runtime)}:{base['PATH']}"
            # Relay listens on 127.0.0.1:3000 in Lambda; here other runs may be going on, so
            # each gets its own port (the launcher and the SDK set-up both honour this).
            base[EXTENSION_PORT_ENV] = str(_free_port())
            if foreign is not None:
                base["LAYER_BUILDER_SMOKE_MACHINE"] = foreign.machine  # os.machine() in Node
            events = _events(options)
            check = _accept_any if options.function_dir else _sample_check(events)
            after = None
            if layer_dir is not None:
                machine = foreign.machine if foreign else runtimes.host_machine()
                after = _sentry_check(sentry, expected_path(layer_dir, machine), work)
            record = run_environment(
                env, api, runtime, base, events, work, options.limits, check, after
            )
            return record, f"{runtime.label}; layer {env.mount}"
    finally:
        env.close()


def _standin_registered(work: Path) -> bool:
    """The extension that runs is the sandbox stand-in (it says so first thing in its log)."""
    log_path = work / f"extension-{EXTENSION_NAME}.log"
    try:
        with open(log_path, errors="replace") as f:
            return "SANDBOX STAND-IN" in f.readline()
    except OSError:
        return False


def _sentry_summary(sentry: FakeSentry) -> list[dict[str, Any]]:
    return [
        {"type": i.type, "exceptions": i.exception_types, "path": i.path} for i in sentry.events()
    ]


def smoke_zip(zip_path: Path, options: SmokeOptions) -> list[ZipReport]:
    """Smoke-test ``zip_path`` for every architecture it can be attached to; one report per
    architecture (and, for Node, per way Sentry enables the SDK: ``-r`` and ``--import``)."""
    if not zip_path.is_file():
        raise ArgumentError(f"{zip_path}: no such file")
    host = host_architecture()
    listed = zip_architectures(zip_path)
    if options.architectures:
        listed = [a for a in listed if a in options.architectures]
    archs = sorted(listed, key=lambda a: a != host)
    reports: list[ZipReport] = []
    # One unpacked tree serves every architecture's run (it is mounted read-only); each run
    # starts by putting back the files an earlier run shimmed or stubbed (environment.prepare).
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
            reports.extend(_smoke_arch(zip_path, layer_dir, arch, options, foreign))
    return sorted(reports, key=lambda r: listed.index(r.architecture))


def _smoke_arch(
    zip_path: Path,
    layer_dir: Path,
    arch: str,
    options: SmokeOptions,
    foreign: runtimes.Foreign | None = None,
) -> list[ZipReport]:
    out = []
    with tempfile.TemporaryDirectory(prefix="layer-builder-smoke-") as tmp, fake_sentry() as sentry:
        work = Path(tmp)
        runtime_name = runtimes.detect(layer_dir, options.runtime)
        baseline, baseline_note, bare_logs = None, None, {}
        if options.baseline:
            (work / "bare").mkdir()
            bare, _ = _one_run(None, options, runtime_name, work / "bare", sentry)
            baseline, bare_logs = bare.timings, _read_logs(bare, "bare/")
            if bare.failure is not None:
                baseline = None
                baseline_note = (
                    f"no comparison: the function without the layer failed ({bare.failure})"
                )
        modes = runtimes.enable_modes(runtime_name)
        for enable in [m for m in modes if m in options.enable_modes] or modes:
            report = ZipReport(str(zip_path), arch, "failed", runtime=runtime_name)
            report.enable = runtimes.enable_label(runtime_name, enable)
            report.baseline, report.baseline_note = baseline, baseline_note
            report.logs.update(bare_logs)
            run_dir = work / f"layer-{enable}"
            run_dir.mkdir()
            sentry.items.clear()
            record, label = _one_run(
                layer_dir, options, runtime_name, run_dir, sentry, foreign, enable
            )
            # No shims carried over to the next run: prepare() puts every original back first
            # (restore_replaced), and shims again.
            report.mount = label
            report.logs.update(_read_logs(record, ""))
            report.extensions, report.invocations = record.extensions, record.invocations
            report.timings = record.timings
            report.sentry_events = _sentry_summary(sentry)
            if record.failure is not None:
                report.phase, report.cause = record.failure.phase, record.failure.cause
            else:
                report.status = "passed"
            out.append(report)
    return out
