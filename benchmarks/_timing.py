"""Timing shared by the benchmark scripts: best of n runs after one warm-up (noise only ever adds time)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """(fastest of `repeat` timed calls in seconds, the last result); one untimed warm-up call first."""
    out = fn()
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out
