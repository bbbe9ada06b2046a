"""The book's pipeline: execute every chapter notebook, collect the claims, render the HTML book.

``make book`` runs ``python -m lib.build``; ``python -m lib.build --help`` lists the options.

1. jupytext turns each chapter notebook (MyST Markdown) into an ``.ipynb``;
2. papermill executes it with ``scale`` and ``seed`` injected, one worker process per notebook
   (as many at once as ``--jobs``, default the number of cores), into ``_build/<scale>/chapters/``;
3. beside each executed notebook lie its measurements (``<notebook>.measurements.json``, written
   by the notebook's ``Scorecard``), its provenance (``<notebook>.provenance.json``) and its key
   (``<notebook>.key``: the hashes of its inputs and outputs), all published together by atomic
   renames once the run is complete;
4. every chapter's measurements are judged against its current ``claims.yml`` (so that editing a
   criterion re-renders without re-executing), and the scorecard page and the chapters'
   ``{claims-table}`` tables are generated from the verdicts;
5. Jupyter Book renders the executed notebooks (``execute_notebooks: off``, ``-W -n --keep-going``)
   into ``_build/html`` (scale ``book``) or ``_build/<scale>/html``.

A notebook whose inputs did not change (its text, the ``lib`` modules it imports followed
transitively, the kit, ``requirements.txt``, scale, seed and threads) is not executed again: an
edit to one chapter's science re-executes only the notebooks that import it. A failing notebook stops nothing
else; it is
reported with its failing cell at the end and makes the command exit non-zero.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import ROOT, claims, data, provenance, scales, teaching

#: Every chapter the book plans, in reading order: slug -> (part, paper). The scorecard lists the
#: chapters not yet written as such.
CHAPTERS: dict[str, tuple[str, str]] = {
    "ttfs-exact-mapping": ("Time-to-first-spike networks",
                           "Stanojevic et al. 2023, an exact mapping from ReLU networks to SNNs"),
    "ttfs-deep-training": ("Time-to-first-spike networks",
                           "Stanojevic et al. 2024, deep SNNs with 0.3 spikes per neuron"),
    "copy-average": ("Learning dynamics", "Şimşek et al. 2023, copy or average teacher weights"),
    "gradient-flow": ("Learning dynamics", "Brea et al. 2023, MLPGradientFlow"),
    "clapp": ("Local and continual learning", "Illing et al. 2021, CLAPP"),
    "gateon": ("Local and continual learning", "Barry et al. 2023, GateON"),
    "sample-and-measure": ("Models of spiking data", "Bellec et al. 2021, fitting summary statistics"),
    "neulvm": ("Models of spiking data", "Wang et al. 2022, mesoscopic modeling of hidden neurons"),
    "gof-point-processes": ("Models of spiking data", "Gerhard & Gerstner 2010, rescaling, thinning or complementing"),
    "surprise-taxonomy": ("Surprise", "Modirshanechi et al. 2022, a taxonomy of surprise"),
}

#: Notebooks of a chapter, in reading order.
NOTEBOOKS: tuple[str, ...] = ("theory", "reproduce")

#: Files copied from the repository root into the rendered book's source.
BOOK_FILES: tuple[str, ...] = ("_config.yml", "_toc.yml", "intro.md", "references.bib", "references.md")

MATHJAX_SRC = ROOT / "node_modules" / "mathjax" / "es5"

SCORECARD_MARKER = "<!-- scorecard-table -->"

#: Folder of the assembled source that holds each chapter's judged claims table (HTML).
CLAIMS_TABLES = "_claims"


# --------------------------------------------------------------------------------------------
# Discovery


def tree(scale: str, seed: int = 0) -> Path:
    """The build tree of one scale and seed: ``_build/<scale>/seed-<seed>/``.

    Results are kept per seed, so that ``--seed 1`` never overwrites seed 0, and a book is
    always rendered from the notebooks of a single seed.
    """
    return ROOT / "_build" / scale / f"seed-{seed}"


@dataclass(frozen=True)
class Notebook:
    """One chapter notebook to execute at one scale."""

    slug: str
    name: str
    scale: str
    seed: int

    @property
    def source(self) -> Path:
        return ROOT / "chapters" / self.slug / f"{self.name}.md"

    @property
    def outdir(self) -> Path:
        return tree(self.scale, self.seed) / "chapters" / self.slug

    @property
    def output(self) -> Path:
        return self.outdir / f"{self.name}.ipynb"

    @property
    def keyfile(self) -> Path:
        return self.outdir / f"{self.name}.key"

    @property
    def label(self) -> str:
        return f"{self.slug}/{self.name}" + (f"@seed{self.seed}" if self.seed else "")


def toc_slugs(toc_path: Path = ROOT / "_toc.yml") -> list[str]:
    """The chapter slugs listed in ``_toc.yml``, in order."""
    toc = yaml.safe_load(toc_path.read_text())
    out: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            f = node.get("file", "")
            parts = Path(f).parts
            if len(parts) >= 2 and parts[0] == "chapters" and parts[1] not in out:
                out.append(parts[1])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    return out


def _chapter_folders() -> list[str]:
    base = ROOT / "chapters"
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def chapters() -> list[str]:
    """The written chapters: listed in ``_toc.yml`` and present under ``chapters/``, in toc order.

    A folder under ``chapters/`` that ``_toc.yml`` does not list is a draft (see
    :func:`drafts`): it is not built. A listed chapter without its folder or its ``claims.yml``,
    or a slug outside :data:`CHAPTERS`, is an error.
    """
    listed = toc_slugs()
    folders = _chapter_folders()
    no_claims = [s for s in listed if s in folders and not (ROOT / "chapters" / s / "claims.yml").is_file()]
    if no_claims:
        raise ValueError(f"chapter folder(s) without a claims.yml: {', '.join(f'chapters/{s}' for s in no_claims)}")
    missing = [s for s in listed if s not in folders]
    if missing:
        raise ValueError(f"_toc.yml lists chapters without a folder under chapters/: {', '.join(missing)}")
    unknown = [s for s in listed if s not in CHAPTERS]
    if unknown:
        raise ValueError(f"chapters {unknown} are not in lib.build.CHAPTERS; expected slugs {', '.join(CHAPTERS)}")
    return listed


def drafts() -> list[str]:
    """Chapter folders that ``_toc.yml`` does not list yet: work in progress, never built."""
    listed = set(toc_slugs())
    return [s for s in _chapter_folders() if s not in listed]


def notebooks(scale: str, seed: int, slugs: list[str] | None = None,
              names: list[str] | None = None) -> list[Notebook]:
    """The notebooks to execute for ``slugs`` (default: every written chapter), only those named
    ``names`` (default :data:`NOTEBOOKS`; ``["reproduce"]`` for a sweep of the claims alone)."""
    scales.check(scale)
    bad = [n for n in names or () if n not in NOTEBOOKS]
    if bad:
        raise ValueError(f"unknown notebook(s) {', '.join(bad)}; expected one of {', '.join(NOTEBOOKS)}")
    known = chapters()
    if slugs:
        bad = [s for s in slugs if s not in known]
        if bad:
            raise ValueError(f"unknown chapter(s) {', '.join(bad)}; expected one of {', '.join(known)}")
    out = []
    for slug in slugs or known:
        for name in (n for n in NOTEBOOKS if not names or n in names):
            nb = Notebook(slug, name, scale, seed)
            if not nb.source.is_file():
                raise ValueError(f"chapter {slug} lacks {nb.source.relative_to(ROOT)}")
            out.append(nb)
    return out


# --------------------------------------------------------------------------------------------
# Cache: a notebook's key covers what it imports, and nothing of other chapters

#: The kit: modules of ``lib`` that every chapter shares, always part of a notebook's key.
#: (``build`` is the pipeline itself: its parameters that matter, scale, seed and threads,
#: are in the key; editing its code does not re-execute the book.)
KIT_MODULES: tuple[str, ...] = (
    "lib", "lib.claims", "lib.data", "lib.plotting", "lib.progress", "lib.provenance", "lib.scales",
    "lib.teaching", "lib.torchkit",
)

LIB = Path(__file__).resolve().parent


def lib_modules() -> dict[str, Path]:
    """Every module of the ``lib`` package: dotted name -> file (``__init__.py`` for a package)."""
    out: dict[str, Path] = {}
    for path in sorted(LIB.rglob("*.py")):
        rel = path.relative_to(LIB.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


def _imports_of(tree: ast.AST, package: str, known: dict[str, Path]) -> set[str]:
    """The ``lib`` modules an AST imports; ``package`` resolves relative imports."""
    found: set[str] = set()

    def add(name: str) -> None:
        if name in known:
            found.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            add(mod)
            for a in node.names:
                add(f"{mod}.{a.name}")  # `from lib import gof` imports the module lib.gof
    # importing a.b.c runs a/__init__ and a/b/__init__ first
    for name in list(found):
        parts = name.split(".")
        for i in range(1, len(parts)):
            add(".".join(parts[:i]))
    return found


def notebook_imports(source: Path) -> set[str]:
    """The ``lib`` modules that the code cells of a MyST notebook import.

    Raises:
        ValueError: if a code cell is not valid Python (after dropping magics and shell lines).
    """
    import jupytext

    known = lib_modules()
    found: set[str] = set()
    for i, c in enumerate(jupytext.read(source).cells):
        if c.cell_type != "code":
            continue
        code = "\n".join(line for line in c.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(code)
        except SyntaxError as err:
            raise ValueError(f"{source}: code cell {i + 1} is not valid Python: {err.msg} (line {err.lineno})") from err
        found |= _imports_of(tree, "", known)
    return found


def dependencies(modules: set[str]) -> list[str]:
    """``modules`` and every ``lib`` module they import, transitively, plus the kit; sorted."""
    known = lib_modules()
    todo = [m for m in (*modules, *KIT_MODULES) if m in known]
    seen: set[str] = set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        path = known[m]
        package = m if path.name == "__init__.py" else m.rpartition(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        todo += [d for d in _imports_of(tree, package, known) if d not in seen]
    return sorted(seen)


def _sha(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def input_hashes(nb: Notebook, threads: int = 1) -> dict[str, str]:
    """What a notebook's result depends on, each with its SHA-256.

    The notebook's text, the ``lib`` modules it imports (followed through lib's own imports),
    the kit, ``requirements.txt``, and the parameters (scale, seed, threads). Not the chapter's
    ``claims.yml``: verdicts are judged at the scorecard, after execution.
    """
    known = lib_modules()
    out = {f"chapters/{nb.slug}/{nb.name}.md": _sha(nb.source.read_bytes())}
    for m in dependencies(notebook_imports(nb.source)):
        path = known[m]
        out[str(path.relative_to(LIB.parent))] = _sha(path.read_bytes())
    req = ROOT / "requirements.txt"
    out["requirements.txt"] = _sha(req.read_bytes()) if req.exists() else ""
    out["parameters"] = f"scale={nb.scale};seed={nb.seed};threads={threads}"
    return out


def input_stats(hashes: dict[str, str]) -> dict[str, int]:
    """The modification times (ns) of the files behind :func:`input_hashes`.

    An edit that is reverted during a run restores the content but not the time, so comparing
    times at the start and the end of a run catches it.
    """
    out = {}
    for rel in hashes:
        if rel == "parameters":
            continue
        path = (LIB.parent / rel) if rel.startswith("lib/") else (ROOT / rel)
        out[rel] = path.stat().st_mtime_ns if path.exists() else -1
    return out


def key_of(hashes: dict[str, str]) -> str:
    """One digest over a notebook's input hashes."""
    return _sha(json.dumps(hashes, sort_keys=True).encode())


def input_key(nb: Notebook, threads: int = 1) -> str:
    """The cache key of a notebook (see :func:`input_hashes`)."""
    return key_of(input_hashes(nb, threads))


def read_key(nb: Notebook) -> dict | None:
    """The key record beside an executed notebook, or ``None`` where it is missing or unreadable."""
    try:
        rec = json.loads(nb.keyfile.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("key"), str) else None


def outputs_intact(nb: Notebook, rec: dict) -> bool:
    """Whether every published output of a notebook still has the hash recorded in its key."""
    outs = rec.get("outputs")
    if not isinstance(outs, dict) or f"{nb.name}.ipynb" not in outs:
        return False
    for name, digest in outs.items():
        f = nb.outdir / name
        if not f.is_file() or _sha(f.read_bytes()) != digest:
            return False
    return True


def is_cached(nb: Notebook, key: str) -> bool:
    """True where the executed notebook was made from the same inputs, completely and without error.

    The key record names the inputs' hashes and the outputs' hashes: a partial, truncated or
    deleted output, or one left by another run, is not trusted.
    """
    rec = read_key(nb)
    return rec is not None and rec["key"] == key and data_current(rec) and outputs_intact(nb, rec)


def data_current(rec: dict) -> bool:
    """Whether every dataset an executed notebook loaded is still what this machine would give it.

    The key record names the :func:`lib.data.identity` of each dataset the notebook loaded
    (the data actually used and a digest of its files); installing, removing or hiding one
    (``BOOK_SYSTEM_DATA=0``) changes it, and with it the key of exactly those notebooks.
    """
    loaded = rec.get("data", {})
    if not isinstance(loaded, dict):
        return False
    try:
        return all(data.identity(name) == ident for name, ident in loaded.items())
    except (OSError, ValueError):
        return False


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
             f"import sys; from lib.build import _worker_main; sys.exit(_worker_main({str(spec_path)!r}))"],
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


# --------------------------------------------------------------------------------------------
# Seed sweeps


def parse_seeds(spec: str) -> list[int]:
    """Seeds from ``"0-9"``, ``"0,3,5"`` or ``"4"`` (non-negative, distinct, in the order given).

    Raises:
        ValueError: for anything else.
    """
    out: list[int] = []
    for part in str(spec).split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if lo > hi:
                    raise ValueError
                out += range(lo, hi + 1)
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(f"--seeds expects non-negative seeds like 0-9 or 0,3,5, got {spec!r}") from None
    if not out or min(out) < 0:
        raise ValueError(f"--seeds expects non-negative seeds like 0-9 or 0,3,5, got {spec!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"--seeds names a seed twice: {spec!r}")
    return out


def sweep_dir(scale: str) -> Path:
    """Where the sweep summaries of a scale lie: ``_build/<scale>/sweeps/<slug>.json``."""
    return ROOT / "_build" / scale / "sweeps"


def sweep_summary(slug: str, scale: str, seeds: list[int]) -> dict:
    """Each claim of a chapter over ``seeds``: its values, how many seeds pass, mean and sd.

    Judged, like the scorecard, against the current ``claims.yml``.
    """
    import numpy as np

    per_seed = {s: {r["id"]: r for r in chapter_rows(slug, scale, s)} for s in seeds}
    _, cs = claims.load(ROOT / "chapters" / slug / "claims.yml")
    out = []
    for c in cs:
        rows = [per_seed[s][c.id] for s in seeds]
        values = [r["value"] for r in rows]
        measured = [v for v in values if v is not None]
        numeric = [float(v) for v in measured if isinstance(v, (int, float)) and not isinstance(v, bool)]
        entry = {
            "id": c.id, "criterion": str(c.criterion), "checked": scale in c.scales,
            "values": values, "seeds": seeds,
            "n_pass": sum(r["verdict"] == claims.REPRODUCED for r in rows),
            "n_measured": len(measured),
            "control_values": [r.get("control_value") for r in rows],
            "n_control_passes": sum(r["verdict"] == claims.CANNOT_TELL for r in rows),
        }
        if numeric and len(numeric) == len(measured):
            arr = np.asarray(numeric)
            entry.update(kind="number", mean=float(np.nanmean(arr)),
                         sd=float(np.nanstd(arr, ddof=1)) if arr.size > 1 else 0.0,
                         min=float(np.nanmin(arr)), max=float(np.nanmax(arr)))
        elif measured and all(isinstance(v, bool) for v in measured):
            entry.update(kind="bool", n_true=sum(measured))
        else:
            entry.update(kind="other")
        out.append(entry)
    return {"chapter": slug, "scale": scale, "seeds": seeds, "claims": out}


def write_sweeps(scale: str, seeds: list[int], slugs: list[str]) -> list[Path]:
    """Write the sweep summary of every chapter of ``slugs`` (files under :func:`sweep_dir`)."""
    d = sweep_dir(scale)
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for slug in slugs:
        path = d / f"{slug}.json"
        path.write_text(json.dumps(sweep_summary(slug, scale, seeds), indent=2) + "\n")
        out.append(path)
    return out


def read_sweeps(scale: str) -> dict[str, dict]:
    """The sweep summaries of the written chapters at ``scale`` (chapters without one are absent)."""
    out = {}
    for slug in chapters():
        path = sweep_dir(scale) / f"{slug}.json"
        if path.is_file():
            try:
                out[slug] = json.loads(path.read_text())
            except json.JSONDecodeError:
                continue
    return out


def sweep_text(entry: dict) -> str:
    """One claim over seeds, for the tables: ``mean ± sd`` or the range of a boolean, and passes."""
    n = len(entry["seeds"])
    if entry["kind"] == "number":
        val = f"{claims._fmt(entry['mean'])} ± {claims._fmt(entry['sd'])}"
    elif entry["kind"] == "bool":
        val = f"true at {entry['n_true']} of {entry['n_measured']} seeds"
    else:
        val = f"{entry['n_measured']} of {n} measured"
    passes = f"{entry['n_pass']}/{n} seeds pass" if entry["checked"] else "not checked at this scale"
    if entry.get("n_control_passes"):
        passes += f", its control meets the criterion at {entry['n_control_passes']}"
    return f"over {n} seeds: {val}; {passes}"


def sweep_figure(entry: dict, path: Path) -> bool:
    """Plot a numeric claim's values over seeds against its criterion; ``False`` if not numeric."""
    if entry["kind"] != "number":
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from . import plotting

    plotting.setup()
    vals = np.array([np.nan if v is None else float(v) for v in entry["values"]])
    fig, ax = plt.subplots(figsize=(4.5, 2.2))
    ax.plot(vals, np.zeros_like(vals) + np.linspace(-0.15, 0.15, vals.size), "o", color=plotting.color(0),
            alpha=0.8, label="one seed")
    crit = entry["criterion"]
    for token in crit.replace("[", " ").replace("]", " ").replace(",", " ").split():
        try:
            ax.axvline(float(token), color="0.3", ls="--", lw=1)
        except ValueError:
            continue
    ax.set(yticks=[], xlabel=f"{entry['id']} (units of the claim's metric)", title=f"criterion: {crit}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def sweeps_markdown(scale: str, src: Path) -> str:
    """The page of seed sweeps at ``scale``: per chapter a table and one figure per numeric claim."""
    lines = ["# Seed sweeps\n",
             f"A chapter run over several seeds (`make sweep SLUG=<slug> SCALE={scale} SEEDS=N`, or "
             "`python -m lib.build --seeds 0-9`) shows how much each claim's value depends on the seed: "
             "for every claim the mean ± sd over seeds (the range for a yes/no claim) and how many "
             "seeds meet the criterion, judged against the current `claims.yml`.\n"]
    sweeps = read_sweeps(scale)
    if not sweeps:
        lines.append(f"No sweep has been run at scale `{scale}` yet.\n")
        return "\n".join(lines)
    for slug, sw in sweeps.items():
        lines.append(f"## {CHAPTERS[slug][1]}\n")
        lines.append(f"Chapter {{doc}}`chapters/{slug}/index`, seeds {', '.join(map(str, sw['seeds']))}.\n")
        lines.append("| claim | over seeds |\n|---|---|")
        lines += [f"| `{e['id']}` | {sweep_text(e)} |" for e in sw["claims"]]
        lines.append("")
        for e in sw["claims"]:
            rel = f"_sweeps/{slug}-{e['id']}.png"
            if sweep_figure(e, src / rel):
                lines.append(f"```{{figure}} {rel}\n:width: 420px\n\n`{e['id']}` over "
                             f"{len(sw['seeds'])} seeds; dashed: the criterion's threshold.\n```\n")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Scorecard


def chapter_rows(slug: str, scale: str, seed: int = 0) -> list[dict]:
    """The claims of one chapter at ``scale``, judged now against its ``claims.yml``.

    Measurements come from the chapter's published executions only (their key and output
    hashes intact); a notebook that failed or was never executed leaves its claims "not
    measured", with the reason.
    """
    _, cs = claims.load(ROOT / "chapters" / slug / "claims.yml")
    measured: list[claims.Measurement] = []
    reasons = []
    for name in NOTEBOOKS:
        nb = Notebook(slug, name, scale, seed)
        err = nb.outdir / f"{name}.error.txt"
        rec = read_key(nb)
        if err.is_file():
            first = err.read_text().splitlines()[:1] or ["failed"]
            reasons.append(f"the {name} notebook failed: {first[0][:200]}")
            continue
        if rec is None or not outputs_intact(nb, rec):
            reasons.append(f"the {name} notebook has no complete execution at scale {scale}")
            continue
        m = nb.outdir / f"{name}.measurements.json"
        if m.is_file():
            measured += claims.read_measurements(m)
    return claims.judge(cs, measured, scale, slug, missing_reason="; ".join(reasons))


def scorecard_rows(scale: str, seed: int = 0) -> list[dict]:
    """All claim rows of the written chapters at ``scale``, judged now."""
    return [r for slug in chapters() for r in chapter_rows(slug, scale, seed)]


VERDICTS: tuple[str, ...] = (claims.REPRODUCED, claims.NOT_REPRODUCED, claims.CANNOT_TELL, claims.NOT_MEASURED,
                             claims.NOT_CHECKED)


def summary_markdown(rows: list[dict], written: list[str]) -> str:
    """The scorecard's opening table: one row per chapter, the count of each verdict, a link."""
    head = "| chapter | claims | " + " | ".join(VERDICTS) + " |"
    lines = [head, "|" + "---|" * (len(VERDICTS) + 2)]
    for slug in written:
        mine = [r for r in rows if r["chapter"] == slug]
        counts = " | ".join(str(sum(r["verdict"] == v for r in mine)) for v in VERDICTS)
        lines.append(f"| {{ref}}`{CHAPTERS[slug][1]} <scorecard-{slug}>` | {len(mine)} | {counts} |")
    total = " | ".join(f"**{sum(r['verdict'] == v for r in rows)}**" for v in VERDICTS)
    lines.append(f"| **all chapters** | **{len(rows)}** | {total} |")
    return "\n".join(lines) + "\n"


def scorecard_markdown(scale: str, rows: list[dict] | None = None, seed: int = 0) -> str:
    """The generated part of the scorecard page: a summary table and one table per chapter."""
    rows = scorecard_rows(scale, seed) if rows is None else rows
    written = chapters()
    count = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    lines = [
        f"At scale **`{scale}`**, seed **{seed}** (every notebook of this book ran with it): "
        f"{len(rows)} claims in {len(written)} chapters; "
        f"{count[claims.REPRODUCED]} reproduced, {count[claims.NOT_REPRODUCED]} not reproduced, "
        f"{count[claims.CANNOT_TELL]} whose control meets the criterion too (\"{claims.CANNOT_TELL}\"), "
        f"{count[claims.NOT_MEASURED]} not measured, {count[claims.NOT_CHECKED]} not checked at this scale. "
        f"{sum(bool(r['control']) for r in rows)} claims name a negative control (a broken or trivial "
        "method measured with the same metric, shown under our value); the others say why they have none.\n",
        summary_markdown(rows, written),
    ]
    for slug in written:
        part, paper = CHAPTERS[slug]
        lines.append(f"(scorecard-{slug})=\n## {paper}\n")
        lines.append(f"Chapter: {{doc}}`chapters/{slug}/index` ({part}).\n")
        table = claims.table_html([r for r in rows if r["chapter"] == slug], with_chapter=False)
        lines.append("```{raw} html\n" + table + "\n```\n")
    todo = [s for s in CHAPTERS if s not in written]
    if todo:
        lines.append("## Chapters still to be written\n")
        lines += [f"- `{s}`: {CHAPTERS[s][1]}" for s in todo]
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Rendering


def _sync(src: Path, dst: Path) -> None:
    """Copy a file only when its content differs (keeps mtimes, so Sphinx rebuilds only what changed)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_file() and dst.read_bytes() == src.read_bytes():
        return
    shutil.copyfile(src, dst)


def _sync_text(text: str, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_file() and dst.read_text() == text:
        return
    dst.write_text(text)


def html_dir(scale: str, seed: int = 0, flavour: str = "book") -> Path:
    """Where the rendered HTML of ``scale``, ``seed`` and ``flavour`` lies.

    ``_build/html`` for the book at seed 0 (the README's address), ``_build/<scale>/html`` for
    another scale at seed 0, ``_build/<scale>/seed-<seed>/html`` for another seed; the teacher's
    and the student's books in ``.../teacher/html`` and ``.../student/html`` beside them.
    """
    teaching.check_flavour(flavour)
    if flavour != "book":
        base = ROOT / "_build" / scale if seed == 0 else tree(scale, seed)
        return base / flavour / "html"
    if seed == 0:
        return ROOT / "_build" / "html" if scale == "book" else ROOT / "_build" / scale / "html"
    return tree(scale, seed) / "html"


def teaching_page(scale: str) -> str:
    """The "Teaching with this book" page, from each chapter's ``teaching.yml`` and provenance.

    Raises:
        FileNotFoundError: for a chapter without ``teaching.yml``.
    """
    entries = []
    for slug in chapters():
        folder = ROOT / "chapters" / slug
        if not (folder / "teaching.yml").is_file():
            raise FileNotFoundError(f"chapters/{slug}/teaching.yml is missing (see CONTRIBUTING.md)")
        t = teaching.load_teaching(folder / "teaching.yml", teaching.exercise_labels(folder / "theory.md"))
        times = {}
        for sc in ("ci", "book"):
            files = [tree(sc, 0) / "chapters" / slug / f"{n}.provenance.json" for n in NOTEBOOKS]
            times[sc] = teaching.run_time_text(files)
        entries.append((slug, CHAPTERS[slug][1], t, times))
    return teaching.teaching_markdown(entries)


#: Folder of the assembled source that holds the generated API reference.
API_DIR = "api"


def module_kind(name: str) -> str:
    """``"protocol"``, ``"kit"`` or ``"science"``: the layer a ``lib`` module belongs to."""
    if name.startswith("lib.protocols"):
        return "protocol"
    if name in KIT_MODULES or name == "lib.build":
        return "kit"
    return "science"


def api_pages() -> dict[str, str]:
    """The API reference, generated from the docstrings: ``{relative path: MyST text}``.

    One page per module of ``lib`` (``api/lib.gof.md``, ...) with Sphinx autodoc (napoleon reads
    the Google-style docstrings), and ``api/index.md`` listing them by layer.
    """
    mods = [m for m in lib_modules() if m not in ("lib", "lib.protocols")]
    pages = {}
    for m in mods:
        pages[f"{API_DIR}/{m}.md"] = f"# `{m}`\n\n```{{eval-rst}}\n.. automodule:: {m}\n   :members:\n```\n"
    titles = {"science": "Science: the models", "protocol": "Protocols: one per chapter",
              "kit": "Kit: what every chapter shares"}
    lines = ["# API reference\n",
             "Generated from the docstrings of `lib/` at every build. Three layers: *science* modules hold "
             "the models only; each chapter's *protocol* holds its presets per scale, its experiments and "
             "its figures; the *kit* is what every chapter shares (claims, data, the torch kit, scales, "
             "provenance, plotting, progress and the build). See `CONTRIBUTING.md` for the rules.\n"]
    for kind in ("science", "protocol", "kit"):
        lines.append(f"## {titles[kind]}\n")
        lines += [f"- {{doc}}`{m}`" for m in mods if module_kind(m) == kind]
        lines.append("")
    pages[f"{API_DIR}/index.md"] = "\n".join(lines)
    return pages


def assemble(scale: str, seed: int = 0, flavour: str = "book") -> Path:
    """Lay out the book's source at ``_build/<scale>/seed-<seed>/src``: pages, notebooks, scorecard, MathJax.

    Every notebook comes from the same seed's tree, so a book never mixes seeds. The student
    flavour (``src-student``) has every solution removed (:func:`lib.teaching.strip_solutions`).
    """
    teaching.check_flavour(flavour)
    src = tree(scale, seed) / ("src" if flavour == "book" else f"src-{flavour}")
    for f in BOOK_FILES:
        _sync(ROOT / f, src / f)
    for folder in ("_static", "_ext"):
        for f in (ROOT / folder).glob("*.*") if (ROOT / folder).is_dir() else []:
            _sync(f, src / folder / f.name)
    for slug in chapters():
        _sync(ROOT / "chapters" / slug / "index.md", src / "chapters" / slug / "index.md")
        for name in NOTEBOOKS:
            nb = Notebook(slug, name, scale, seed)
            ex = nb.output
            rec = read_key(nb)
            if (nb.outdir / f"{name}.error.txt").is_file() and (rec is None or not outputs_intact(nb, rec)):
                _sync_text(failure_notebook(nb), src / "chapters" / slug / f"{name}.ipynb")
                continue
            if not ex.is_file() or rec is None or not outputs_intact(nb, rec):
                raise FileNotFoundError(f"{ex.relative_to(ROOT)} is missing: execute the chapter first")
            if flavour == "student":
                teaching.strip_file(ex, src / "chapters" / slug / f"{name}.ipynb")
            else:
                _sync(ex, src / "chapters" / slug / f"{name}.ipynb")
    for rel, text in api_pages().items():
        _sync_text(text, src / rel)
    rows = scorecard_rows(scale, seed)
    sweeps = read_sweeps(scale)
    for r in rows:
        entry = next((e for e in sweeps.get(r["chapter"], {}).get("claims", []) if e["id"] == r["id"]), None)
        if entry is not None:
            r["sweep"] = sweep_text(entry)
    _sync_text(sweeps_markdown(scale, src), src / "sweeps.md")
    _sync_text(teaching_page(scale), src / "teaching.md")
    text = (ROOT / "scorecard.md").read_text()
    if SCORECARD_MARKER not in text:
        raise ValueError(f"scorecard.md lacks the marker {SCORECARD_MARKER}")
    _sync_text(text.replace(SCORECARD_MARKER, scorecard_markdown(scale, rows, seed)), src / "scorecard.md")
    # the tables of the {claims-table} directive (_ext/claims_table.py), one per chapter
    for slug in chapters():
        mine = [r for r in rows if r["chapter"] == slug]
        _sync_text(claims.table_html(mine, with_chapter=False) + "\n", src / CLAIMS_TABLES / f"{slug}.html")
    (tree(scale, seed) / "scorecard.json").write_text(json.dumps(rows, indent=2, default=str))
    mj = src / "_vendor" / "mathjax"
    if not MATHJAX_SRC.is_dir():
        raise FileNotFoundError("MathJax is not installed: run `make setup` (npm ci) to vendor it from npm")
    for rel in ("tex-chtml.js",):
        _sync(MATHJAX_SRC / rel, mj / rel)
    fonts = MATHJAX_SRC / "output" / "chtml" / "fonts" / "woff-v2"
    for f in fonts.glob("*.woff"):
        _sync(f, mj / "output" / "chtml" / "fonts" / "woff-v2" / f.name)
    return src


def render(scale: str, seed: int = 0, flavour: str = "book") -> tuple[int, str]:
    """Render the book of ``scale``, ``seed`` and ``flavour`` with Jupyter Book (``-W -n --keep-going``).

    Returns:
        ``(exit code, the tail of the log)``.
    """
    src = assemble(scale, seed, flavour)
    dest = html_dir(scale, seed, flavour)
    # Jupyter Book writes <out>/_build/html: the root's for the book, else a link points there
    out = ROOT if dest == ROOT / "_build" / "html" else dest.parent
    out.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(src), "--path-output", str(out),
           "-W", "-n", "--keep-going", "--quiet"]
    env = {**os.environ, "BOOK_OFFLINE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    log = (proc.stdout + proc.stderr).strip()
    if out != ROOT and not dest.exists():
        dest.symlink_to(Path("_build") / "html")
    return proc.returncode, log


def rendered_complete(scale: str, seed: int = 0, allow_failed: bool = False) -> bool:
    """Whether every notebook of the book has a complete, published execution at ``scale`` and ``seed``.

    With ``allow_failed``, a notebook whose last execution failed counts too: its page then says
    that it failed, with the error (:func:`failure_notebook`).
    """
    for slug in chapters():
        for name in NOTEBOOKS:
            nb = Notebook(slug, name, scale, seed)
            rec = read_key(nb)
            if rec is not None and outputs_intact(nb, rec):
                continue
            if allow_failed and (nb.outdir / f"{name}.error.txt").is_file():
                continue
            return False
    return True


def failure_notebook(nb: Notebook) -> str:
    """The page shown in place of a notebook whose execution failed: what failed, and where."""
    import jupytext
    import nbformat

    title = next((c.source.splitlines()[0].lstrip("# ") for c in jupytext.read(nb.source).cells
                  if c.cell_type == "markdown" and c.source.startswith("# ")), nb.name)
    error = (nb.outdir / f"{nb.name}.error.txt").read_text()
    md = (f"# {title}\n\n**This notebook failed** when the book was built (scale `{nb.scale}`, seed "
          f"{nb.seed}); its results are not shown and its claims are *not measured*. The error:\n\n"
          f"```text\n{error[-6000:]}\n```\n")
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(md)])
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(book)


# --------------------------------------------------------------------------------------------
# Command line


def check_arguments(args: argparse.Namespace) -> None:
    """Validate the command line before anything runs (a ``ValueError`` with one line each)."""
    scales.check(args.scale)
    if args.seeds is not None:
        if args.seed != 0:
            raise ValueError("give either --seed or --seeds, not both")
        args.seed_list = parse_seeds(args.seeds)
    else:
        args.seed_list = [args.seed]
    if args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    if args.timeout < 1:
        raise ValueError(f"--timeout must be at least 1 second, got {args.timeout}")
    if args.scheduler and args.executor != "dask":
        raise ValueError("--scheduler needs --executor dask")


def claim_problems(scale: str, seed: int, slugs: list[str]) -> list[str]:
    """Claims of ``slugs`` that fail the build at ``scale``.

    A claim listed for ``scale`` that no successful notebook recorded fails at every scale (its
    notebook did not measure what the chapter promises). At ``ci`` a claim that does not meet
    its criterion fails too, judged against the current ``claims.yml``. A notebook that failed
    is reported on its own and not repeated here.
    """
    out = []
    for slug in dict.fromkeys(slugs):
        if (tree(scale, seed) / "chapters" / slug / "reproduce.error.txt").exists():
            continue
        for r in chapter_rows(slug, scale, seed):
            if r["verdict"] == claims.NOT_MEASURED:
                out.append(f"{slug}/{r['id']}: not measured at scale {scale} ({r['detail'] or 'never recorded'})")
            elif r["verdict"] == claims.NOT_REPRODUCED and scale == "ci":
                out.append(f"{slug}/{r['id']}: not reproduced, ours = {claims._fmt(r['value'])}, "
                           f"criterion {r['criterion']}")
            elif r["verdict"] == claims.CANNOT_TELL and scale == "ci":
                out.append(f"{slug}/{r['id']}: {claims.CANNOT_TELL}, ours = {claims._fmt(r['value'])}, its "
                           f"control = {claims._fmt(r['control_value'])}, criterion {r['criterion']}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib.build", description="Execute the chapters and render the book.")
    ap.add_argument("--scale", default=scales.DEFAULT_SCALE, help=f"one of {', '.join(scales.SCALES)} (default book)")
    ap.add_argument("--seed", type=int, default=0, help="seed injected into every notebook (default 0)")
    ap.add_argument("--seeds", default=None,
                    help="a sweep: run the chapters for several seeds, e.g. 0-9 or 0,3,5 (instead of --seed)")
    ap.add_argument("--slug", action="append", help="execute only this chapter (repeatable); default: all")
    ap.add_argument("--notebook", action="append", choices=NOTEBOOKS,
                    help="execute only this notebook of each chapter (repeatable), e.g. reproduce for a "
                         "sweep of the claims; default: all (a partial build is never rendered)")
    ap.add_argument("--jobs", type=int, default=None, help="notebooks executed at once (default: number of cores)")
    ap.add_argument("--force", action="store_true", help="execute even where the cache is up to date")
    ap.add_argument("--no-render", action="store_true", help="execute only; do not render the HTML book")
    ap.add_argument("--flavour", default="book", choices=teaching.FLAVOURS,
                    help="book (default), teacher (with solutions) or student (solutions removed)")
    ap.add_argument("--executor", default="local", choices=("local", "dask"), help="where notebooks run")
    ap.add_argument("--scheduler", default="", help="Dask scheduler address (with --executor dask)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds a single cell may run (default 1800)")
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS/torch threads per notebook (default 1; fixed so results do not depend on --jobs)")
    args = ap.parse_args(argv)
    if args.slug:
        args.slug = list(dict.fromkeys(args.slug))  # --slug X --slug X runs X once
    try:
        check_arguments(args)
        nbs = notebooks(args.scale, args.seed, args.slug, args.notebook)
        for slug in chapters():
            claims.load(ROOT / "chapters" / slug / "claims.yml")
        for nb in nbs:
            notebook_imports(nb.source)
    except ValueError as err:  # ClaimsFileError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    if drafts():
        print(f"Not built (folders under chapters/ that _toc.yml does not list yet): {', '.join(drafts())}")
    t0 = time.time()
    import contextlib

    try:
        with contextlib.ExitStack() as locks:
            for seed in args.seed_list:
                locks.enter_context(BuildLock(args.scale, seed))
            return _main_locked(args, nbs, t0)
    except BuildLocked as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _print_outcomes(outcomes: list[Outcome]) -> None:
    width = max(len(o.label) for o in outcomes)
    print("\nnotebook".ljust(width + 2) + "  status        wall time")
    for o in outcomes:
        t = f"{o.seconds:8.1f} s" if o.status in ("executed", "failed") else "       —"
        note = f"  ({o.note})" if o.note else ""
        print(f"{o.label.ljust(width)}  {o.status:<12}{t}{note}")


def _main_locked(args: argparse.Namespace, nbs: list[Notebook], t0: float) -> int:
    seeds = args.seed_list
    what = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
    print(f"Executing {len(nbs) * len(seeds)} notebooks at scale {args.scale!r}, {what}", flush=True)
    try:
        report = run_report(args.scale, seeds, args.slug, args.jobs, args.force, args.executor, args.scheduler,
                            args.timeout, args.threads, args.notebook)
    except Interrupted as stop:
        _print_outcomes(stop.outcomes)
        done = sum(o.status in ("executed", "cached") for o in stop.outcomes)
        print(f"\nInterrupted (Ctrl-C): {done} of {len(stop.outcomes)} notebooks finished; running ones were "
              "stopped, queued ones cancelled. Nothing half-written was published.", file=sys.stderr)
        return 130
    outcomes = report.outcomes
    _print_outcomes(outcomes)
    if report.lost_workers:
        print(f"\nDask workers lost during the run (their notebooks were rescheduled): "
              f"{', '.join(report.lost_workers)}", file=sys.stderr)
    failed = [o for o in outcomes if o.status == "failed"]
    rc = 0
    ran = list(dict.fromkeys(o.label.split("/")[0] for o in outcomes))
    problems = [p for seed in seeds for p in claim_problems(args.scale, seed, ran)]
    if len(seeds) > 1:
        for path in write_sweeps(args.scale, seeds, ran):
            print(f"Sweep summary: {path.relative_to(ROOT)}")
    if problems:
        rc = 1
        print("\nClaims that fail this build:\n" + "\n".join(f"  {p}" for p in problems), file=sys.stderr)
    if args.no_render or args.notebook:
        print("Rendering skipped (--no-render)." if args.no_render else "Rendering skipped (--notebook).")
    elif not rendered_complete(args.scale, seeds[0], allow_failed=True):
        print(f"Rendering skipped: not every chapter has been executed at scale {args.scale!r}, seed "
              f"{seeds[0]}; run `python -m lib.build --scale {args.scale} --seed {seeds[0]}` to render the book.")
    else:
        print("Rendering the book with Jupyter Book (-W -n --keep-going) ...", flush=True)
        code, log = render(args.scale, seeds[0], args.flavour)
        if code != 0:
            rc = 1
            print(f"Jupyter Book failed (exit {code}):\n{log[-6000:]}", file=sys.stderr)
        else:
            print(f"Book rendered: {html_dir(args.scale, seeds[0], args.flavour) / 'index.html'}")
    for o in failed:
        seed = int(o.label.split("@seed")[1]) if "@seed" in o.label else 0
        where = tree(args.scale, seed).relative_to(ROOT)
        print(f"\nFAILED {o.label} (see {where}/chapters/{o.label.split('@')[0]}.error.txt)\n{o.error[-4000:]}",
              file=sys.stderr)
    print(f"\n{len(outcomes) - len(failed)} of {len(outcomes)} notebooks ok, {len(failed)} failed; "
          f"total {time.time() - t0:.1f} s")
    return 1 if failed else rc


if __name__ == "__main__":
    raise SystemExit(main())
