"""Shared timer of the benchmarks (imported by the scripts beside it; runs nothing itself)."""

import time


def best_time(fn, repeat: int) -> tuple[float, object]:
    """The shortest of ``repeat`` wall-clock timings of ``fn()``, and its last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


if __name__ == "__main__":  # `make bench` runs every script here; this one is a helper
    print("benchmarks/timing.py: the shared timer (nothing to run)")
