"""Execute a chapter notebook in a live kernel, as a reader does in Jupyter (``make lab``).

The pipeline executes notebooks with ``BOOK_STATIC=1``, where :func:`lib.plotting.explore` draws
its default setting as a static figure. A reader's kernel has no ``BOOK_STATIC``: there the
explorer builds ``ipywidgets`` sliders and calls the model on every change. :func:`run_live`
runs a notebook that way, cell after cell, so that a test sees what the reader would see.

Why not papermill: with a cell containing ``ipywidgets.interactive``, nbclient (0.10-0.11) now
and then never returns from the cell although the kernel has replied. Measured on the neulvm
theory notebook at ``ci``: papermill stalled in 4 of 15 runs (with ipykernel 7.4 and 6.31
alike), while a client that asks the shell channel for the reply with a finite timeout, in a
loop, got every reply in 6 of 6 runs: the reply is sent, and nbclient's wait without a timeout
misses it (jupyter/nbclient#312). This module is that client.
"""

from __future__ import annotations

import os
import queue
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import jupytext

from .. import ROOT, scales
from .discover import NOTEBOOKS
from .execute import worker_env


class LiveKernelError(RuntimeError):
    """A cell of a notebook raised, or did not finish in time, in a live kernel."""


@dataclass
class LiveRun:
    """What :func:`run_live` observed: each code cell's wall time (s) and the widgets shown.

    Attributes:
        seconds: wall time of every code cell, in order (the injected parameters cell first).
        widgets: the number of ``ipywidgets`` views displayed (an explorer shows one).
    """

    seconds: list[float] = field(default_factory=list)
    widgets: int = 0


def _code_cells(path: Path, scale: str, seed: int) -> list[str]:
    """The code cells of a MyST notebook, with ``scale`` and ``seed`` set after its parameters
    cell (the cell tagged ``parameters``, as papermill injects them)."""
    nb = jupytext.read(path)
    cells, injected = [], False
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        cells.append(c.source)
        if not injected and "parameters" in c.metadata.get("tags", []):
            cells.append(f"scale = {scale!r}\nseed = {int(seed)}")
            injected = True
    if not injected:
        raise ValueError(f"{path}: no code cell tagged 'parameters' to inject scale and seed after")
    return cells


def run_live(slug: str, name: str = "theory", scale: str = "ci", seed: int = 0,
             cell_timeout: float = 300.0, kernel: str = "python3") -> LiveRun:
    """Execute ``chapters/<slug>/<name>.md`` in a fresh kernel without ``BOOK_STATIC``.

    The kernel gets the pipeline's environment (one thread, no progress bars, offline, fixed hash
    seed) except ``BOOK_STATIC``, runs in the chapter's folder and writes its results to a
    temporary folder. Each cell's reply is awaited on the shell channel with a 1-s poll, up to
    ``cell_timeout`` seconds.

    Returns:
        a :class:`LiveRun`.

    Raises:
        ValueError: unknown chapter, notebook or scale, or a notebook without a parameters cell.
        LiveKernelError: a cell raised (its index, source head and traceback in the message) or
            did not reply within ``cell_timeout``.
    """
    from jupyter_client.manager import start_new_kernel

    path = ROOT / "chapters" / slug / f"{name}.md"
    if name not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {name!r}; expected one of {NOTEBOOKS}")
    if not path.is_file():
        raise ValueError(f"no notebook {path.relative_to(ROOT)}")
    scales.check(scale)
    if cell_timeout <= 0:
        raise ValueError(f"cell_timeout must be positive, got {cell_timeout}")
    cells = _code_cells(path, scale, seed)
    out = LiveRun()
    with tempfile.TemporaryDirectory(prefix=f"live-{slug}-") as results:
        env = {k: v for k, v in os.environ.items() if k != "BOOK_STATIC"}
        env.update(worker_env(1))
        env.pop("BOOK_STATIC")
        env["BOOK_RESULTS_DIR"] = results
        km, kc = start_new_kernel(kernel_name=kernel, cwd=str(path.parent), env=env)
        try:
            for i, code in enumerate(cells):
                t0 = time.monotonic()
                msg_id = kc.execute(code, allow_stdin=False)
                reply = None
                while reply is None:
                    if time.monotonic() - t0 > cell_timeout:
                        raise LiveKernelError(f"{slug}/{name}, code cell {i}: no reply within "
                                              f"{cell_timeout:g} s:\n{code[:200]}")
                    try:
                        msg = kc.get_shell_msg(timeout=1.0)
                    except queue.Empty:
                        continue
                    if msg["parent_header"].get("msg_id") == msg_id:
                        reply = msg
                out.seconds.append(time.monotonic() - t0)
                out.widgets += _drain(kc, msg_id)
                if reply["content"]["status"] != "ok":
                    tb = "\n".join(reply["content"].get("traceback", []))
                    raise LiveKernelError(f"{slug}/{name}, code cell {i} raised "
                                          f"{reply['content'].get('ename')}: "
                                          f"{reply['content'].get('evalue')}\n{code[:200]}\n{tb}")
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    return out


def _drain(kc, msg_id: str) -> int:
    """Read the cell's IOPub messages up to its ``idle`` status; count the widget views shown."""
    widgets = 0
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1.0)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        data = msg["content"].get("data", {})
        if msg["msg_type"] in ("display_data", "execute_result") and \
                "application/vnd.jupyter.widget-view+json" in data:
            widgets += 1
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    return widgets
