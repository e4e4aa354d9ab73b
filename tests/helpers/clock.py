"""The tests' injected clock: time passes only when the code under test reads it.

``Clock(start, step)`` reads ``start`` first, then moves on by ``step`` at every further
reading, from any thread; ``advance`` jumps ahead; ``now`` is the last reading (or what a
test sets). ``monotonic`` lets it stand in for the ``time`` module.
"""

from __future__ import annotations

import threading


class Clock:
    def __init__(self, start: float = 0.0, step: float = 0.0) -> None:
        self.now = start - step
        self.step = step
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now += self.step
            return self.now

    def monotonic(self) -> float:
        return self()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
