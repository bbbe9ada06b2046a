"""Execution: one notebook by papermill in a worker process, many on local workers or a Dask cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from .. import ROOT, claims, data, provenance
from .discover import Notebook, notebooks, tree
from .keys import LIB, _sha, input_hashes, input_key, input_stats, is_cached, key_of

# --------------------------------------------------------------------------------------------
# Execution


@dataclass
class Outcome:
    """What became of one notebook."""

    label: str
    status: str  # "executed", "cached", "failed", "interrupted", "cancelled"
    seconds: float = 0.0
    error: str = ""
    retried: bool = False
    note: str = ""  # what went wrong on the way and was recovered from, shown beside the status


def worker_env(threads: int) -> dict[str, str]:
    """Environment of a kernel: fixed thread counts, no progress bars, no network, results beside it."""
    env = {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "NUMEXPR_NUM_THREADS": str(threads),
        "TQDM_DISABLE": "1",
        "BOOK_OFFLINE": "1",
        "BOOK_STATIC": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYTHONHASHSEED": "0",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    # the lib that planned the run (and computed its key) comes first, for the worker and the kernel
    pp = os.environ.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([str(LIB.parent), str(ROOT)] + ([pp] if pp else [])))
    return env


#: What a published execution of a notebook consists of (beside ``<name>.ipynb``).
def published_files(nb: Notebook) -> tuple[Path, ...]:
    """Every file that a successful execution of ``nb`` publishes, key last."""
    d = nb.outdir
    return (nb.output, d / f"{nb.name}.measurements.json", d / f"{nb.name}.provenance.json", nb.keyfile)


def unpublish(nb: Notebook) -> None:
    """Remove what an earlier execution of ``nb`` published (the key first, so nothing looks valid)."""
    for f in reversed(published_files(nb)):
        f.unlink(missing_ok=True)


def execute(nb: Notebook, key: str, threads: int = 1, timeout: int = 1800) -> Outcome:
    """Execute one notebook with papermill (runs in a worker process; never raises).

    The run writes into a private temporary folder; only a complete, successful run whose inputs
    did not change while it ran is published into ``nb.outdir`` (notebook, measurements,
    provenance, then the key, each by an atomic rename). A failed run removes the earlier
    results of that notebook and leaves ``<name>.error.txt``.

    Args:
        nb: the notebook.
        key: its cache key when the run was planned; the run keys its result by the inputs as
            it finds them when it starts, and discards it if any input changed (content or
            modification time) before it ended.
        threads: BLAS/torch threads for its kernel.
        timeout: seconds a single cell may run.

    Returns:
        The outcome, with the failing cell and traceback in ``error`` on failure.
    """
    import tempfile

    import jupytext
    import nbformat
    import papermill as pm

    os.environ.update(worker_env(threads))
    nb.outdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".run-{nb.name}-", dir=nb.outdir))
    os.environ["BOOK_RESULTS_DIR"] = str(tmp)
    error = nb.outdir / f"{nb.name}.error.txt"
    src = tmp / f"{nb.name}.input.ipynb"
    out = tmp / f"{nb.name}.ipynb"
    t0 = time.time()
    try:
        # the inputs as this run sees them (they may have changed since the run was planned)
        before = input_hashes(nb, threads)
        before_stats = input_stats(before)
        key = key_of(before)
        notebook = jupytext.read(nb.source)
        if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in notebook.cells):
            raise ValueError(f"{nb.source.relative_to(ROOT)} has no cell tagged 'parameters'")
        nbformat.write(notebook, src)
        failed_starts: list[str] = []
        while True:
            try:
                pm.execute_notebook(
                    str(src), str(out), parameters={"scale": nb.scale, "seed": nb.seed},
                    cwd=str(nb.source.parent), kernel_name="python3", progress_bar=False,
                    execution_timeout=timeout, report_mode=False,
                )
                break
            except Exception as err:
                if not kernel_failed_to_start(err):
                    raise
                failed_starts.append(str(err))
                if len(failed_starts) == KERNEL_STARTS:
                    raise RuntimeError(f"the kernel failed to start {KERNEL_STARTS} times; last: {err}\n"
                                       f"its stderr is in {nb.name}.kernel.log") from err
                time.sleep(len(failed_starts))  # let whatever held its ports or memory move on
        after = input_hashes(nb, threads)
        if key_of(after) != key or input_stats(after) != before_stats:
            raise RuntimeError("the notebook's inputs changed while it ran (an edit of its text or of the "
                               "lib/ modules it imports); its output matches neither version and is discarded")
        _hide_default_parameters(out)
        seconds = time.time() - t0
        rec = provenance.collect(nb.scale, nb.seed, wall_time_s=seconds,
                                 notebook=f"chapters/{nb.slug}/{nb.name}.md")
        used = tmp / data.DATASETS_FILE
        loaded = json.loads(used.read_text()) if used.is_file() else {}
        rec["datasets"] = loaded
        (tmp / f"{nb.name}.provenance.json").write_text(json.dumps(rec, indent=2) + "\n")
        measured = tmp / claims.MEASUREMENTS_FILE
        if measured.exists():
            claims.read_measurements(measured)  # a truncated or malformed file fails the run here
            measured.rename(tmp / f"{nb.name}.measurements.json")
        outputs = {f.name: _sha((tmp / f.name).read_bytes()) for f in published_files(nb)[:-1]
                   if (tmp / f.name).exists()}
        (tmp / nb.keyfile.name).write_text(json.dumps({"key": key, "inputs": after, "data": loaded,
                                                       "outputs": outputs}, indent=2) + "\n")
        unpublish(nb)
        error.unlink(missing_ok=True)
        for f in published_files(nb):
            if (tmp / f.name).exists():
                os.replace(tmp / f.name, f)
        note = ""
        if failed_starts:
            note = (f"kernel started at attempt {len(failed_starts) + 1}; before: "
                    + "; ".join(failed_starts))
        return Outcome(nb.label, "executed", seconds, note=note)
    except BaseException as err:  # noqa: BLE001 - a failure is a result, reported at the end
        msg = _describe_failure(err)
        unpublish(nb)
        error.write_text(msg)
        return Outcome(nb.label, "failed", time.time() - t0, msg)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


#: How many times :func:`execute` starts a kernel that dies or hangs before running any cell.
KERNEL_STARTS = 3

#: nbclient's kernel start-up, which holds jupyter_client's wait for the kernel's first reply.
_KERNEL_START_FRAMES = {"async_start_new_kernel", "async_start_new_kernel_client"}


def kernel_failed_to_start(err: BaseException) -> bool:
    """Whether ``err`` came from starting the kernel, before any cell of the notebook ran.

    A kernel can die while it starts for reasons outside the notebook: jupyter_client picks
    free ports, closes them and hands them to the kernel, and another process that binds one in
    between kills the kernel ("Kernel died before replying to kernel_info"); memory pressure
    can kill it too. Nothing of the notebook has run then, so starting it again is safe. A
    failure in a cell (``PapermillExecutionError``) or a kernel that dies while a cell runs is
    never this: those are the notebook's own and are reported at once.
    """
    if not isinstance(err, (RuntimeError, TimeoutError)):
        return False
    frames = {f.name for f in traceback.extract_tb(err.__traceback__)}
    return bool(frames & _KERNEL_START_FRAMES)


def _hide_default_parameters(path: Path) -> None:
    """Hide the notebook's default ``parameters`` cell in the book; the injected one shows the scale used."""
    import nbformat

    executed = nbformat.read(path, as_version=4)
    for c in executed.cells:
        tags = c.get("metadata", {}).get("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(executed, path)


def _describe_failure(err: BaseException) -> str:
    try:
        from papermill.exceptions import PapermillExecutionError
    except ImportError:  # pragma: no cover
        PapermillExecutionError = ()  # type: ignore
    if isinstance(err, PapermillExecutionError):
        tb = "\n".join(err.traceback)
        import re

        tb = re.sub(r"\x1b\[[0-9;]*m", "", tb)
        return f"cell {err.exec_count} raised {err.ename}: {err.evalue}\n{tb}"
    return "".join(traceback.format_exception(err)).strip()


class BuildLocked(RuntimeError):
    """Another build holds the lock of the same build tree."""


class BuildLock:
    """An exclusive lock on one build tree (``_build/<scale>/seed-<seed>/.lock``), held for a build.

    The lock is an ``flock`` on the file, so it is released when its holder exits, however it
    exits; the file names the holder (pid, start time, command) for the error message.
    """

    def __init__(self, scale: str, seed: int):
        self.path = tree(scale, seed) / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> "BuildLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise BuildLocked(f"another build is running on {self.path.parent.relative_to(ROOT)} ({holder}); "
                              "wait for it to finish, or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}, "
                      f"command {' '.join(sys.argv)}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this process when its parent dies (``PR_SET_PDEATHSIG``).

    A worker's kernel exits by itself within a second of its worker (ipykernel polls its parent
    through ``JPY_PARENT_PID``), so that killing the build, even with SIGKILL, leaves no orphan.
    """
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker still polls below
        pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _worker_main(spec_path: str) -> int:
    """Entry point of a worker process: execute one notebook, write its outcome as JSON."""
    spec = json.loads(Path(spec_path).read_text())
    _die_with_parent(int(spec["parent"]))
    nb = Notebook(spec["slug"], spec["name"], spec["scale"], int(spec["seed"]))
    res = execute(nb, spec["key"], int(spec["threads"]), int(spec["timeout"]))
    tmp = Path(spec["outcome"] + ".tmp")
    tmp.write_text(json.dumps(res.__dict__))
    os.replace(tmp, spec["outcome"])
    return 0


@dataclass
class _Running:
    nb: Notebook
    key: str
    proc: subprocess.Popen
    outcome: Path
    attempt: int


def _start_worker(nb: Notebook, key: str, threads: int, timeout: int, attempt: int) -> _Running:
    """Start one worker process for ``nb``; its stderr and its kernel's go to ``<name>.kernel.log``.

    The worker runs in a session of its own (a Ctrl-C in the terminal reaches the build only,
    which then stops the workers) and dies with the build (:func:`_die_with_parent`).
    """
    nb.outdir.mkdir(parents=True, exist_ok=True)
    runs = tree(nb.scale, nb.seed) / ".runs"
    runs.mkdir(exist_ok=True)
    stem = runs / f"{nb.slug}.{nb.name}.{os.getpid()}.{attempt}"
    outcome = Path(f"{stem}.outcome.json")
    outcome.unlink(missing_ok=True)
    spec = {"slug": nb.slug, "name": nb.name, "scale": nb.scale, "seed": nb.seed, "key": key,
            "threads": threads, "timeout": timeout, "outcome": str(outcome), "parent": os.getpid()}
    spec_path = Path(f"{stem}.spec.json")
    spec_path.write_text(json.dumps(spec))
    mode = "w" if attempt == 1 else "a"
    with open(nb.outdir / f"{nb.name}.kernel.log", mode) as log:
        proc = subprocess.Popen(
            [sys.executable, "-c",
             f"import sys; from lib.build.execute import _worker_main; sys.exit(_worker_main({str(spec_path)!r}))"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            env={**os.environ, **worker_env(threads)}, cwd=ROOT,
        )
    return _Running(nb, key, proc, outcome, attempt)


def _finish(r: _Running) -> Outcome | None:
    """The outcome of a worker that has exited, or ``None`` where it died before writing one."""
    try:
        return Outcome(**json.loads(r.outcome.read_text()))
    except (OSError, json.JSONDecodeError, TypeError):
        return None
    finally:
        for f in (r.outcome, Path(str(r.outcome).replace(".outcome.json", ".spec.json"))):
            f.unlink(missing_ok=True)


def _stop(procs: list[subprocess.Popen], grace: float = 5.0) -> None:
    """Terminate worker processes (their kernels follow within a second), then kill stragglers."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.time() + grace
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _run_local(todo: list[tuple[Notebook, str]], jobs: int, threads: int, timeout: int, bar) -> list[Outcome]:
    """Run the notebooks in worker processes, ``jobs`` at once.

    A worker that dies without an outcome (killed, out of memory) fails only its own notebook,
    which is retried once in a fresh worker, then reported. A Ctrl-C cancels what is queued,
    stops the running workers and their kernels, and returns what finished with the rest marked
    ``interrupted`` (the caller prints the summary and exits 130).
    """
    queue = [(nb, key, 1) for nb, key in todo]
    running: list[_Running] = []
    out: list[Outcome] = []
    try:
        while queue or running:
            while queue and len(running) < jobs:
                nb, key, attempt = queue.pop(0)
                running.append(_start_worker(nb, key, threads, timeout, attempt))
            time.sleep(0.1)
            for r in [r for r in running if r.proc.poll() is not None]:
                running.remove(r)
                res = _finish(r)
                if res is None:
                    how = f"signal {-r.proc.returncode}" if r.proc.returncode < 0 else f"exit {r.proc.returncode}"
                    if r.attempt == 1:
                        bar.write(f"worker for {r.nb.label} died ({how}); retrying once")
                        queue.insert(0, (r.nb, r.key, 2))
                        continue
                    unpublish(r.nb)
                    msg = f"worker process died twice ({how}); see {r.nb.name}.kernel.log"
                    (r.nb.outdir / f"{r.nb.name}.error.txt").write_text(msg + "\n")
                    res = Outcome(r.nb.label, "failed", 0.0, msg)
                elif r.attempt > 1:
                    res.error = (res.error + "\n" if res.error else "") + "(retried once after its worker died)"
                    res.retried = True
                    res.note = "; ".join(filter(None, ["retried once: its first worker died", res.note]))
                out.append(res)
                bar.set_postfix_str(f"{res.label} {res.status}")
                bar.update(1)
    except KeyboardInterrupt:
        _stop([r.proc for r in running])
        for r in running:
            _finish(r)
            out.append(Outcome(r.nb.label, "interrupted", 0.0, "stopped by Ctrl-C"))
        out += [Outcome(nb.label, "cancelled", 0.0, "not started: Ctrl-C") for nb, _, _ in queue]
        raise Interrupted(out) from None
    return out


class Interrupted(Exception):
    """A run stopped by Ctrl-C; ``outcomes`` holds what finished and what did not."""

    def __init__(self, outcomes: list[Outcome]):
        super().__init__("interrupted")
        self.outcomes = outcomes


def _execute_logged(nb: Notebook, key: str, threads: int, timeout: int) -> Outcome:
    """:func:`execute` with this process's stderr, and so its kernel's, sent to ``<name>.kernel.log``.

    For Dask workers, whose stderr is otherwise the terminal of whoever started them.
    """
    nb.outdir.mkdir(parents=True, exist_ok=True)
    saved = os.dup(2)
    with open(nb.outdir / f"{nb.name}.kernel.log", "w") as log:
        os.dup2(log.fileno(), 2)
        try:
            return execute(nb, key, threads, timeout)
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _run_dask(todo: list[tuple[Notebook, str]], scheduler: str, jobs: int, threads: int, timeout: int,
              bar) -> tuple[list[Outcome], list[str]]:
    """Hand the executions to a Dask cluster (``scheduler``), or to a local one of ``jobs`` processes.

    The cluster's workers must see the same checkout at the same path (a shared file system).
    Dask reschedules the notebook of a worker that dies; the workers lost during the run are
    returned, for the summary.

    Returns:
        ``(outcomes, lost worker addresses)``.
    """
    try:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed
    except ImportError as err:
        raise SystemExit("--executor dask needs dask.distributed: pip install 'dask[distributed]'") from err
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)
    client = (Client(scheduler) if scheduler else
              Client(n_workers=jobs, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR))
    seen: set[str] = set(client.scheduler_info()["workers"])
    futs = {client.submit(_execute_logged, nb, key, threads, timeout, pure=False, key=f"{nb.label}-{key[:8]}"): nb
            for nb, key in todo}
    out = []
    try:
        for f in dask_completed(list(futs)):
            seen |= set(client.scheduler_info()["workers"])
            try:
                res = f.result()
            except Exception as err:  # the worker died more often than Dask retries
                unpublish(futs[f])
                res = Outcome(futs[f].label, "failed", 0.0, f"dask worker failed: {err!r}")
            out.append(res)
            bar.set_postfix_str(f"{res.label} {res.status}")
            bar.update(1)
        lost = sorted(seen - set(client.scheduler_info()["workers"]))
    except KeyboardInterrupt:
        for f in futs:
            f.cancel()
        done = {o.label for o in out}
        out += [Outcome(nb.label, "interrupted", 0.0, "stopped by Ctrl-C")
                for nb in futs.values() if nb.label not in done]
        raise Interrupted(out) from None
    finally:
        client.close()
    return out, lost


@dataclass
class RunReport:
    """What a run did: one outcome per notebook, and the Dask workers lost on the way."""

    outcomes: list[Outcome]
    lost_workers: list[str]


def run(scale: str, seed: int = 0, slugs: list[str] | None = None, jobs: int | None = None, force: bool = False,
        executor: str = "local", scheduler: str = "", timeout: int = 1800, threads: int = 1,
        names: list[str] | None = None) -> list[Outcome]:
    """Execute the notebooks of ``slugs`` (default all) at ``scale``, reusing cached results.

    ``threads`` (BLAS and torch threads per notebook) is fixed, not derived from ``jobs``, so that
    a printed number never depends on how many notebooks run at once. The caller holds the
    :class:`BuildLock` of the tree.

    Returns:
        One outcome per notebook.

    Raises:
        Interrupted: on Ctrl-C, with the outcomes so far.
    """
    return run_report(scale, seed, slugs, jobs, force, executor, scheduler, timeout, threads, names).outcomes


def run_report(scale: str, seed: int | list[int] = 0, slugs: list[str] | None = None, jobs: int | None = None,
               force: bool = False, executor: str = "local", scheduler: str = "", timeout: int = 1800,
               threads: int = 1, names: list[str] | None = None) -> RunReport:
    """:func:`run`, returning the lost Dask workers too; ``seed`` may be a list (a sweep).

    The notebooks of every seed go to the executor together, so that a sweep fills every worker.
    """
    from tqdm.auto import tqdm

    if executor not in ("local", "dask"):
        raise ValueError(f"unknown executor {executor!r}; expected 'local' or 'dask'")
    seeds = [seed] if isinstance(seed, int) else list(seed)
    nbs = [nb for s in seeds for nb in notebooks(scale, s, slugs, names)]
    keyed = [(nb, input_key(nb, threads)) for nb in nbs]
    outcomes = [Outcome(nb.label, "cached") for nb, key in keyed if not force and is_cached(nb, key)]
    todo = [(nb, key) for nb, key in keyed if force or not is_cached(nb, key)]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    lost: list[str] = []
    order = {nb.label: i for i, nb in enumerate(nbs)}
    what = f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds"
    with tqdm(total=len(nbs), desc=f"notebooks ({scale}, {what})", unit="nb", initial=len(outcomes)) as bar:
        try:
            if todo and executor == "local":
                outcomes += _run_local(todo, jobs, threads, timeout, bar)
            elif todo:
                done, lost = _run_dask(todo, scheduler, jobs, threads, timeout, bar)
                outcomes += done
        except Interrupted as stop:
            stop.outcomes = sorted(outcomes + stop.outcomes, key=lambda o: order[o.label])
            raise
    return RunReport(sorted(outcomes, key=lambda o: order[o.label]), lost)
