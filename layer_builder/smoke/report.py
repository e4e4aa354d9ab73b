"""What a smoke run found: per extension, per invocation, what Sentry received, timings.

Plain dataclasses with ``to_dict`` for ``--json``; the CLI renders them for people.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class SmokeFailed(Exception):
    """One pass criterion failed; ``phase`` names where (``extension init``, ``invoke``...)."""

    def __init__(self, phase: str, cause: str) -> None:
        super().__init__(f"{phase}: {cause}")
        self.phase = phase
        self.cause = cause


@dataclass
class ExtensionReport:
    file: str  # the executable in /opt/extensions
    name: str | None = None  # the name it registered with
    events: list[str] = field(default_factory=list)
    registered_ms: float | None = None  # since the environment started
    received: list[str] = field(default_factory=list)
    shutdown_ms: float | None = None  # SHUTDOWN sent -> process gone
    exit_code: int | None = None
    killed: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass
class InvocationReport:
    number: int
    request_id: str
    outcome: str  # "response" | "error" | "timeout" | "crash"
    error_type: str | None = None
    duration_ms: float | None = None  # delivered -> runtime answered and extensions back in Next
    response: Any = None


@dataclass
class Timings:
    extensions_init_ms: float | None = None  # start -> every extension registered
    runtime_init_ms: float | None = None  # runtime started -> its first Next
    init_ms: float | None = None  # start -> runtime and extensions all in Next
    cold_invoke_ms: float | None = None  # the first invocation
    warm_invoke_ms: float | None = None  # the fastest later invocation that returned

    @property
    def cold_start_ms(self) -> float | None:
        if self.init_ms is None or self.cold_invoke_ms is None:
            return None
        return self.init_ms + self.cold_invoke_ms


@dataclass
class RunRecord:
    """One execution environment from init to shutdown (with the layer, or the bare function)."""

    extensions: list[ExtensionReport] = field(default_factory=list)
    invocations: list[InvocationReport] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    leftovers: list[str] = field(default_factory=list)
    failure: SmokeFailed | None = None
    logs: dict[str, str] = field(default_factory=dict)  # process -> log file


@dataclass
class ZipReport:
    zip: str
    architecture: str
    status: str  # "passed" | "failed" | "skipped"
    runtime: str | None = None
    enable: str | None = None  # how the SDK was enabled (the Python wrapper, NODE_OPTIONS=...)
    mount: str | None = None
    phase: str | None = None
    cause: str | None = None
    extensions: list[ExtensionReport] = field(default_factory=list)
    invocations: list[InvocationReport] = field(default_factory=list)
    sentry_events: list[dict[str, Any]] = field(default_factory=list)
    timings: Timings | None = None
    baseline: Timings | None = None
    baseline_note: str | None = None
    logs: dict[str, str] = field(default_factory=dict)

    @property
    def added_cold_ms(self) -> float | None:
        if self.timings is None or self.baseline is None:
            return None
        a, b = self.timings.cold_start_ms, self.baseline.cold_start_ms
        return None if a is None or b is None else a - b

    @property
    def added_warm_ms(self) -> float | None:
        if self.timings is None or self.baseline is None:
            return None
        a, b = self.timings.warm_invoke_ms, self.baseline.warm_invoke_ms
        return None if a is None or b is None else a - b

    def summary(self) -> str:
        """The one sentence users ask for, or why it is missing."""
        cold, warm = self.added_cold_ms, self.added_warm_ms
        if cold is None:
            return self.baseline_note or "no cold-start comparison"
        text = f"the layer adds {round(cold) + 0} ms to a cold start"
        return text + (f", {round(warm) + 0} ms to a warm invocation" if warm is not None else "")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("timings", "baseline"):
            t = getattr(self, key)
            if t is not None:
                data[key]["cold_start_ms"] = t.cold_start_ms
        data["added_cold_start_ms"] = self.added_cold_ms
        data["added_warm_invoke_ms"] = self.added_warm_ms
        data["summary"] = self.summary() if self.status == "passed" else None
        return data
