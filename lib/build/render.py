"""Rendering: the book's source assembled from the executed notebooks, then Jupyter Book."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .. import ROOT, claims, teaching
from .discover import NOTEBOOKS, Notebook, chapter_info, chapters, tree
from .keys import KIT_MODULES, lib_modules, outputs_intact, read_key
from .report import (
    read_sweeps,
    scorecard_markdown,
    scorecard_rows,
    sweep_text,
    sweeps_markdown,
)

#: Files copied from the repository root into the rendered book's source.
BOOK_FILES: tuple[str, ...] = ("_config.yml", "_toc.yml", "intro.md", "references.bib", "references.md")

MATHJAX_SRC = ROOT / "node_modules" / "mathjax" / "es5"

SCORECARD_MARKER = "<!-- scorecard-table -->"

#: Folder of the assembled source that holds each chapter's judged claims table (HTML).
CLAIMS_TABLES = "_claims"


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
        entries.append((slug, chapter_info(slug).label, t, times))
    return teaching.teaching_markdown(entries)


#: Folder of the assembled source that holds the generated API reference.
API_DIR = "api"


def module_kind(name: str) -> str:
    """``"protocol"``, ``"kit"`` or ``"science"``: the layer a ``lib`` module belongs to."""
    if name.startswith("lib.protocols"):
        return "protocol"
    if name in KIT_MODULES or name == "lib.build" or name.startswith("lib.build."):
        return "kit"
    return "science"


def api_pages() -> dict[str, str]:
    """The API reference, generated from the docstrings: ``{relative path: MyST text}``.

    One page per module of ``lib`` (``api/lib.gof.md``, ...) with Sphinx autodoc (napoleon reads
    the Google-style docstrings), and ``api/index.md`` listing them by layer.
    """
    mods = [m for m in lib_modules() if m not in ("lib", "lib.protocols") and not m.endswith(".__main__")]
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
