"""One execution environment through Lambda's phases: init, invocations, shutdown.

Init: every executable in ``/opt/extensions`` starts, each must register; then the runtime
starts; init ends when the runtime and every extension have called Next, all within the
init limit (10 s). Invoke: the event goes to the runtime and INVOKE to the extensions that
asked for it; the invocation ends when the runtime answered and every extension is back in
Next, within the function timeout. Shutdown: the runtime is stopped, SHUTDOWN goes to the
extensions, and whatever has not exited when the 2-second budget is spent is killed. Last,
no process of the run may be left. The first broken rule ends the run as
:class:`SmokeFailed`, naming its phase.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from layer_builder.smoke.api import Invocation, LambdaAPI
from layer_builder.smoke.environment import Environment
from layer_builder.smoke.report import ExtensionReport, InvocationReport, RunRecord, SmokeFailed
from layer_builder.smoke.runtimes import LOAD_ERRORS, Runtime

log = logging.getLogger(__name__)

#: Called per answered invocation (1-based number): a failure cause, or None.
Check = Callable[[int, Invocation], "str | None"]


@dataclass(frozen=True)
class Limits:
    init_s: float = 10.0  # Lambda's init limit
    timeout_s: float = 30.0  # the function timeout
    shutdown_s: float = 2.0  # Lambda's shutdown budget, then SIGKILL
    runtime_stop_s: float = 0.5  # of that budget, for the runtime after SIGTERM


def _ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round((b - a) * 1000, 1)


#: The line that names an error: Node's ``Error: ...`` / ``TypeError [CODE]: ...``, Python's
#: final traceback line ``ValueError: ...`` / ``pkg.mod.Error: ...``.
_ERROR_LINE = re.compile(
    r"^(?:Uncaught )?(?:[A-Za-z_][\w.]*\.)?(?:[A-Z]\w*)?(?:Error|Exception|Exit|Interrupt)"
    r"(?: \[[A-Z0-9_]+\])?: \S"
)


def error_line(text: str) -> str | None:
    """The line of a process's output that names its error, or None.

    Python prints the exception last in a traceback (the last such line wins); Node prints
    its ``Error: ...`` line once, before the stack and the ``Node.js vNN`` footer (the first
    wins after a Node ``throw`` marker).
    """
    lines = [line.strip() for line in text.splitlines()]
    found = [line for line in lines if _ERROR_LINE.match(line)]
    if not found:
        return None
    return found[-1] if "Traceback (most recent call last):" in lines else found[0]


def _tail(path: Path, lines: int = 3) -> str:
    """The error line of a log (else its last lines), short enough for one error line."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    named = error_line(text)
    if named:
        return named[:400]
    last = text.strip().splitlines()
    return " | ".join(line.strip() for line in last[-lines:] if line.strip())[:400]


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the process group (a launcher's children go with it)."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, sig)


class _Run:
    def __init__(self, env: Environment, api: LambdaAPI, work: Path, limits: Limits) -> None:
        self.env, self.api, self.work, self.limits = env, api, work, limits
        self.record = RunRecord()
        self.extensions: dict[str, subprocess.Popen[bytes]] = {}
        self.reports: dict[str, ExtensionReport] = {}
        self.runtime: subprocess.Popen[bytes] | None = None
        self.t0 = api.clock()

    def _log(self, name: str) -> Path:
        path = self.work / f"{name}.log"
        self.record.logs[name] = str(path)
        return path

    def _await(self, predicate: Callable[[], bool], deadline: float) -> str | None:
        """Wait for ``predicate``; None when it holds, else "timeout" or the process that exited."""
        while True:
            if self.api.wait(predicate, min(0.02, max(deadline - self.api.clock(), 0))):
                return None
            # Before shutdown no process may exit: Lambda reports that as a crash.
            for name, proc in [*self.extensions.items(), ("runtime", self.runtime)]:
                if proc is not None and proc.poll() is not None:
                    return name
            if self.api.clock() >= deadline:
                return "timeout"

    def _exited(self, name: str, when: str, phase: str) -> SmokeFailed:
        proc = self.runtime if name == "runtime" else self.extensions[name]
        code = proc.poll() if proc else None
        what = "the runtime" if name == "runtime" else f"extension {name}"
        tail = _tail(Path(self.record.logs[name if name == "runtime" else f"extension-{name}"]))
        return SmokeFailed(
            phase, f"{what} exited with code {code} {when}" + (f": {tail}" if tail else "")
        )

    # ---- init -----------------------------------------------------------------------------

    def start_extensions(self, base_env: Mapping[str, str]) -> None:
        ext_dir = self.env.layer_dir / "extensions"
        entries = sorted(p for p in ext_dir.iterdir() if p.is_file()) if ext_dir.is_dir() else []
        # Lambda starts every file in /opt/extensions; one it cannot execute fails the init.
        stuck = [p.name for p in entries if not os.access(p, os.X_OK)]
        if stuck:
            raise SmokeFailed(
                "extension init",
                f"{', '.join(stuck)} in /opt/extensions is not executable: Lambda cannot start "
                "it (Extension.LaunchError: permission denied); give it mode 0755 or move it out",
            )
        files = [p.name for p in entries]
        for name in files:
            self.reports[name] = ExtensionReport(file=name)
            argv = [f"{self.env.opt}/extensions/{name}"]
            self.extensions[name] = self.env.spawn(
                argv, base_env, self.work, self._log(f"extension-{name}")
            )
        self.record.extensions = list(self.reports.values())

    def wait_registered(self) -> None:
        deadline = self.t0 + self.limits.init_s
        files = set(self.extensions)
        api = self.api
        # Done when every file registered, or as many registrations as files came in (one
        # under another name cannot be told apart from a late one otherwise).
        why = self._await(
            lambda: (
                files <= {e.name for e in api.extensions.values()}
                or len(api.extensions) >= len(files)
            ),
            deadline,
        )
        registered = {e.name: e for e in self.api.registered()}
        strangers = sorted(set(registered) - files)
        if strangers:
            missing = sorted(files - set(registered))
            raise SmokeFailed(
                "extension init",
                f"an extension registered as {', '.join(strangers)}, which is no file in "
                f"/opt/extensions (files not registered: {', '.join(missing) or 'none'}); "
                "Lambda expects the file name as Lambda-Extension-Name",
            )
        for name, report in self.reports.items():
            ext = registered.get(name)
            if ext is not None:
                report.name, report.events = ext.name, list(ext.events)
                report.registered_ms = _ms(self.t0, ext.registered_at)
        if why == "timeout":
            missing = sorted(files - set(registered))
            raise SmokeFailed(
                "extension init",
                f"{', '.join(missing)} did not register within {self.limits.init_s:g} s",
            )
        self._check_extension_errors("extension init")  # init/error says more than the exit
        if why is not None:
            when = "during init" if why in registered else "before registering"
            raise self._exited(why, when, "extension init")
        self.record.timings.extensions_init_ms = _ms(self.t0, self.api.clock())

    def start_runtime(self, runtime: Runtime, base_env: Mapping[str, str]) -> None:
        self.runtime_started = self.api.clock()
        self.runtime = self.env.spawn(
            runtime.argv, {**base_env, **runtime.env}, self.work, self._log("runtime")
        )
        deadline = self.t0 + self.limits.init_s
        api = self.api
        why = self._await(lambda: api.ready() or api.runtime.init_error is not None, deadline)
        if api.runtime.init_error is not None:
            # The runtime exits by itself after reporting (awslambdaric flushes the SDK on
            # its way out, which sends the init error to Sentry too): let it, briefly.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.runtime.wait(timeout=self.limits.shutdown_s)
            err = api.runtime.init_error
            raise SmokeFailed(
                "runtime init", f"{err.get('errorType')}: {err.get('errorMessage', '')}"[:500]
            )
        self._check_extension_errors("extension init")
        if why == "timeout":
            waiting = [] if api.runtime.waiting else ["the runtime"]
            waiting += [e.name for e in api.registered() if not e.idle]
            raise SmokeFailed(
                "init",
                f"not ready within {self.limits.init_s:g} s: waiting for {', '.join(waiting)}",
            )
        if why is not None:
            raise self._exited(
                why, "during init", "runtime init" if why == "runtime" else "extension init"
            )
        t = self.record.timings
        t.runtime_init_ms = _ms(self.runtime_started, api.runtime.first_next_at)
        t.init_ms = _ms(
            self.t0,
            max(
                [api.runtime.first_next_at or 0.0]
                + [e.last_next_at or 0.0 for e in api.registered()]
            ),
        )

    def _check_extension_errors(self, phase: str) -> None:
        for ext in self.api.registered():
            if ext.errors:
                raise SmokeFailed(phase, f"extension {ext.name} reported {'; '.join(ext.errors)}")

    # ---- invoke ---------------------------------------------------------------------------

    def invoke(self, number: int, event: bytes, check: Check) -> Invocation:
        api = self.api
        inv = api.invoke(event, self.limits.timeout_s)
        report = InvocationReport(number, inv.request_id, "timeout")
        self.record.invocations.append(report)
        why = self._await(lambda: api.invoke_done(inv), inv.started_at + self.limits.timeout_s)
        if inv.answered_at is not None:
            report.outcome = "error" if inv.error is not None else "response"
            report.error_type = str(inv.error.get("errorType")) if inv.error else None
            report.response = _decode(inv.response) if inv.response is not None else inv.error
        if why == "timeout":
            if inv.answered_at is None:
                raise SmokeFailed(
                    "invoke",
                    f"invocation {number}: no answer within the {self.limits.timeout_s:g} s "
                    "function timeout (Lambda: Task timed out)",
                )
            late = [e.name for e in api.registered() if not e.idle]
            raise SmokeFailed(
                "invoke",
                f"invocation {number}: extension {', '.join(late)} did not call Next within the "
                "function timeout",
            )
        if why is not None:
            report.outcome = "crash"
            raise self._exited(why, f"during invocation {number}", "invoke")
        ends = [inv.answered_at] + [
            e.last_next_at or 0.0 for e in api.registered() if "INVOKE" in e.events
        ]
        report.duration_ms = _ms(inv.started_at, max(x for x in ends if x is not None))
        if report.error_type in LOAD_ERRORS:
            message = (inv.error or {}).get("errorMessage", "")
            raise SmokeFailed(
                "invoke",
                f"invocation {number}: the handler could not be loaded: "
                f"{report.error_type}: {message}"[:500],
            )
        cause = check(number, inv)
        if cause:
            raise SmokeFailed("invoke", f"invocation {number}: {cause}")
        return inv

    # ---- shutdown -------------------------------------------------------------------------

    def shutdown(self, reason: str) -> None:
        """Stop the runtime, send SHUTDOWN, kill what outlives the budget. Always runs."""
        start = self.api.clock()
        end = start + self.limits.shutdown_s
        if self.runtime is not None and self.runtime.poll() is None:
            _signal(self.runtime, signal.SIGTERM)
            try:
                self.runtime.wait(timeout=self.limits.runtime_stop_s)
            except subprocess.TimeoutExpired:
                _signal(self.runtime, signal.SIGKILL)
        if self.runtime is not None:
            _signal(self.runtime, signal.SIGKILL)  # the runtime's children too
            self.runtime.wait()
        targets = {e.name for e in self.api.shutdown(reason, max(end - self.api.clock(), 0))}
        sent = self.api.clock()
        for name, proc in self.extensions.items():
            report = self.reports[name]
            if name not in targets:
                # Not registered for SHUTDOWN (or never registered): Lambda just kills it.
                if proc.poll() is None:
                    _signal(proc, signal.SIGKILL)
                report.exit_code = proc.wait()
                continue
            try:
                report.exit_code = proc.wait(timeout=max(end - self.api.clock(), 0))
                report.shutdown_ms = _ms(sent, self.api.clock())
            except subprocess.TimeoutExpired:
                _signal(proc, signal.SIGKILL)
                report.exit_code, report.killed = proc.wait(), True
            _signal(proc, signal.SIGKILL)  # anything it started and left in its group
        for ext in self.api.registered():
            if ext.name in self.reports:
                self.reports[ext.name].received = list(ext.received)
                self.reports[ext.name].errors = list(ext.errors)

    def shutdown_verdict(self) -> SmokeFailed | None:
        killed = [r.file for r in self.reports.values() if r.killed]
        if killed:
            return SmokeFailed(
                "shutdown",
                f"{', '.join(killed)} did not exit within {self.limits.shutdown_s:g} s of SHUTDOWN "
                "(killed)",
            )
        errors = [f"{r.file}: {'; '.join(r.errors)}" for r in self.reports.values() if r.errors]
        if errors:
            return SmokeFailed("shutdown", f"extension reported {', '.join(errors)}")
        return None

    def cleanup(self) -> SmokeFailed | None:
        time.sleep(0.05)  # let the kernel finish the kills above before looking
        left = self.env.kill_leftovers()
        self.record.leftovers = [f"{comm} (pid {pid})" for pid, comm in left]
        if left:
            return SmokeFailed(
                "cleanup",
                f"{len(left)} process(es) left behind after shutdown: "
                f"{', '.join(self.record.leftovers)} (killed)",
            )
        return None


def _decode(raw: bytes) -> object:
    import json

    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def run_environment(
    env: Environment,
    api: LambdaAPI,
    runtime: Runtime,
    base_env: Mapping[str, str],
    events: list[bytes],
    work: Path,
    limits: Limits,
    check: Check,
    after_invocations: Callable[[RunRecord], None] | None = None,
) -> RunRecord:
    """Run one environment; the record's ``failure`` is the first broken rule, if any."""
    run = _Run(env, api, work, limits)
    failure: SmokeFailed | None = None
    reason = "spindown"
    try:
        run.start_extensions(base_env)
        run.wait_registered()
        run.start_runtime(runtime, base_env)
        for number, event in enumerate(events, start=1):
            run.invoke(number, event, check)
        if after_invocations is not None:
            after_invocations(run.record)
    except SmokeFailed as exc:
        failure, reason = exc, "failure"
    finally:
        run.shutdown(reason)
        verdicts = [run.shutdown_verdict(), run.cleanup()]
    failure = failure or next((v for v in verdicts if v is not None), None)
    inv_times = [i.duration_ms for i in run.record.invocations if i.duration_ms is not None]
    t = run.record.timings
    t.cold_invoke_ms = inv_times[0] if inv_times else None
    warm = [
        i.duration_ms
        for i in run.record.invocations[1:]
        if i.duration_ms is not None and i.outcome == "response"
    ]
    warm = warm or inv_times[1:]
    t.warm_invoke_ms = min(warm) if warm else None
    run.record.failure = failure
    return run.record
