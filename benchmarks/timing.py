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


def cpu_times(fn, repeat: int, warmup: int = 1) -> tuple[float, float, float, object]:
    """CPU time of ``fn()`` over ``repeat`` runs after ``warmup`` untimed ones.

    ``time.process_time`` counts the CPU time of this process only, so other programs on a busy
    machine change it much less than wall-clock time. Returns ``(median, low, high, result)``:
    the median and the 25th and 75th percentiles (the spread), in seconds, and the last result.
    """
    out = None
    for _ in range(warmup):
        out = fn()
    ts = []
    for _ in range(max(1, repeat)):
        t0 = time.process_time()
        out = fn()
        ts.append(time.process_time() - t0)
    ts.sort()
    q = lambda f: ts[min(len(ts) - 1, int(round(f * (len(ts) - 1))))]  # noqa: E731
    return q(0.5), q(0.25), q(0.75), out


if __name__ == "__main__":  # `make bench` runs every script here; this one is a helper
    print("benchmarks/timing.py: the shared timer (nothing to run)")
