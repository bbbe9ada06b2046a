"""Provenance: what produced a number (code version, packages, scale, seed, machine, time).

``lib.build`` writes :func:`collect` as ``<notebook>.provenance.json`` beside every executed
notebook; the last cell of each notebook shows it in a collapsed block through :func:`show`.
"""

from __future__ import annotations

import html
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from typing import Any

from . import ROOT

#: Packages whose versions are recorded.
PACKAGES: tuple[str, ...] = (
    "numpy", "scipy", "statsmodels", "scikit-learn", "torch", "matplotlib", "papermill", "jupyter-book",
)

_T0 = time.time()  # when lib.provenance was first imported in this process (the kernel)


def git_commit() -> str:
    """The commit of the working tree (with ``+dirty`` when it has changes), or ``"unknown"``."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu() -> str:
    """A one-line description of the processor."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    """Installed versions of :data:`PACKAGES` (``"absent"`` where not installed)."""
    out = {"python": sys.version.split()[0]}
    for p in PACKAGES:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            out[p] = "absent"
    return out


def collect(scale: str, seed: int, wall_time_s: float | None = None, **extra: Any) -> dict[str, Any]:
    """The provenance record of one run.

    Args:
        scale: the scale the notebook ran at.
        seed: its seed.
        wall_time_s: the wall time in seconds (default: since the kernel imported lib.provenance).
        **extra: more fields (the notebook path, ...).

    Returns:
        A JSON-serialisable dict.
    """
    return {
        "git_commit": git_commit(),
        "scale": scale,
        "seed": seed,
        "wall_time_s": round(time.time() - _T0 if wall_time_s is None else wall_time_s, 2),
        "cpu": cpu(),
        "cores": os.cpu_count(),
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "platform": platform.platform(),
        "packages": versions(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        **extra,
    }


def show(scale: str, seed: int) -> None:
    """Display the provenance of this run in a collapsed block (a plain dict outside IPython)."""
    rec = collect(scale, seed)
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in rec.items() if k != "packages"
    )
    pk = ", ".join(f"{k} {v}" for k, v in rec["packages"].items())
    block = (
        "<details class='provenance'><summary>Provenance of this page</summary>"
        f"<table>{rows}<tr><td>packages</td><td>{html.escape(pk)}</td></tr></table></details>"
    )
    try:
        from IPython.display import HTML, display

        display(HTML(block))
    except ImportError:  # pragma: no cover
        print(rec)
