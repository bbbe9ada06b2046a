"""Cache keys: what a notebook's result depends on (its text, the ``lib`` modules it imports, the kit,
``requirements.txt``, the parameters and the data it loaded), and whether a published result is current."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

from .. import ROOT, data
from .discover import Notebook

# --------------------------------------------------------------------------------------------
# Cache: a notebook's key covers what it imports, and nothing of other chapters

#: The kit: modules of ``lib`` that every chapter shares, always part of a notebook's key.
#: (``build`` is the pipeline itself: its parameters that matter, scale, seed and threads,
#: are in the key; editing its code does not re-execute the book.)
KIT_MODULES: tuple[str, ...] = (
    "lib", "lib.claims", "lib.data", "lib.plotting", "lib.progress", "lib.provenance", "lib.scales",
    "lib.teaching", "lib.torchkit",
)

LIB = Path(__file__).resolve().parent.parent  # the lib package (this file is lib/build/keys.py)


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
