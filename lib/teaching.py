"""Teaching builds: the student flavour of a notebook, and the "Teaching with this book" page.

Part of the kit (used by ``lib.build``). ``make student`` renders the book with every solution
removed -- the ``{solution}`` blocks and the gated ``{solution-start}`` ... ``{solution-end}``
regions with their code cells -- and a stub code cell where solution code was; ``make teacher``
renders it with the solutions. Both are built with ``-W``.

The teaching page is generated from each chapter's ``teaching.yml`` (prerequisites, the plan of
a 90-minute session, the exercises that fit it, by label) and from the wall times that the
pipeline measured (the notebooks' provenance), never typed.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import yaml

#: The flavours of a rendered book: the full book, the teacher's (the same, with solutions) and
#: the student's (no solutions).
FLAVOURS: tuple[str, ...] = ("book", "teacher", "student")

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})\{(?P<kind>solution|solution-start|solution-end)\}\s*(?P<arg>\S*)")

STUB = "# Exercise {label}: write your solution here\n"


def check_flavour(flavour: str) -> str:
    """Return ``flavour`` if it is one of :data:`FLAVOURS`, else raise a ``ValueError``."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}; expected one of {', '.join(FLAVOURS)}")
    return flavour


def _closing(lines: list[str], start: int, fence: str) -> int:
    """Index of the line that closes the fence opened at ``start`` (a line of the same marker)."""
    ch = fence[0]
    for i in range(start + 1, len(lines)):
        s = lines[i].strip()
        if s and set(s) == {ch} and len(s) >= len(fence):
            return i
    raise ValueError(f"unclosed {fence}{{solution}} block (opened on line {start + 1})")


def strip_solutions(nb: dict) -> tuple[dict, list[str]]:
    """The student flavour of a notebook (an nbformat dict): every solution removed.

    Returns:
        ``(notebook, labels)``: a new notebook, and the labels of the exercises whose solutions
        were removed (a stub code cell stands where a gated solution had code).

    Raises:
        ValueError: for an unclosed solution block or a ``solution-start`` without its end.
    """
    out = copy.deepcopy(nb)
    cells, labels = [], []
    gated: str | None = None  # label of the gated solution we are inside
    stubbed = False
    for cell in out["cells"]:
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        if cell["cell_type"] != "markdown":
            if gated is None:
                cells.append(cell)
            elif cell["cell_type"] == "code" and not stubbed:
                stub = {"cell_type": "code", "metadata": {"tags": ["student-stub"]}, "source": STUB.format(label=gated),
                        "outputs": [], "execution_count": None}
                if "id" in cell:
                    stub["id"] = cell["id"]
                cells.append(stub)
                stubbed = True
            continue
        lines = src.split("\n")
        kept: list[str] = []
        i = 0
        while i < len(lines):
            m = _FENCE.match(lines[i].strip())
            if gated is not None:
                if m and m["kind"] == "solution-end":
                    i = _closing(lines, i, m["fence"]) + 1
                    gated, stubbed = None, False
                else:
                    i += 1
                continue
            if m and m["kind"] == "solution":
                labels.append(m["arg"])
                i = _closing(lines, i, m["fence"]) + 1
            elif m and m["kind"] == "solution-start":
                labels.append(m["arg"])
                gated, stubbed = m["arg"], False
                i = _closing(lines, i, m["fence"]) + 1
            else:
                kept.append(lines[i])
                i += 1
        text = "\n".join(kept).strip("\n")
        if text.strip():
            cell["source"] = text
            cells.append(cell)
    if gated is not None:
        raise ValueError(f"solution-start {gated!r} has no solution-end")
    out["cells"] = cells
    return out, labels


def strip_file(src: Path, dst: Path) -> list[str]:
    """Write the student flavour of the notebook ``src`` (.ipynb) to ``dst``; return the labels."""
    nb, labels = strip_solutions(json.loads(Path(src).read_text()))
    dst.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if not dst.is_file() or dst.read_text() != text:
        dst.write_text(text)
    return labels


# --------------------------------------------------------------------------------------------
# The teaching page

_TEACHING_KEYS = {"prerequisites", "session", "exercises"}


def load_teaching(path: Path, exercise_labels: set[str]) -> dict:
    """Read and check a chapter's ``teaching.yml``.

    Raises:
        ValueError: when a key is missing or unknown, a list is empty, or an exercise label is
            not one of the chapter's exercises.
    """
    raw = yaml.safe_load(Path(path).read_text())
    if not isinstance(raw, dict) or set(raw) != _TEACHING_KEYS:
        raise ValueError(f"{path}: expected exactly the keys {sorted(_TEACHING_KEYS)}")
    for k in _TEACHING_KEYS:
        if not isinstance(raw[k], list) or not raw[k] or not all(isinstance(x, str) for x in raw[k]):
            raise ValueError(f"{path}: {k!r} must be a non-empty list of strings")
    bad = [x for x in raw["exercises"] if x not in exercise_labels]
    if bad:
        raise ValueError(f"{path}: unknown exercise labels {bad}; the chapter has {sorted(exercise_labels)}")
    return raw


def exercise_labels(theory_md: Path) -> set[str]:
    """The labels of the exercises of a chapter's theory notebook."""
    return set(re.findall(r"\{exercise\}[^\n]*\n:label: ([\w-]+)", Path(theory_md).read_text()))


def run_time_text(provenance_files: list[Path]) -> str:
    """``"41 s (theory 12 s, reproduce 29 s)"`` from the notebooks' provenance, or ``"not run here"``."""
    parts, total = [], 0.0
    for f in provenance_files:
        if not f.is_file():
            return "not run yet on the machine that built this book"
        t = float(json.loads(f.read_text())["wall_time_s"])
        total += t
        parts.append(f"{f.name.split('.')[0]} {t:.0f} s")
    return f"{total:.0f} s ({', '.join(parts)})"


def teaching_markdown(chapters: list[tuple[str, str, dict, dict[str, str]]]) -> str:
    """The "Teaching with this book" page.

    Args:
        chapters: ``(slug, title, teaching, {scale: run time text})`` per chapter.
    """
    lines = [
        "# Teaching with this book\n",
        "Every chapter can carry one 90-minute session: the theory notebook in class, its exercises "
        "as hand-outs, the reproduction as homework or a demonstration. `make student` renders the book "
        "without the solutions (a stub code cell where solution code was), `make teacher` with them; "
        "each page's download button gives the notebook of that flavour. The run times below are the "
        "wall times the pipeline measured on the machine that built this book (2 cores for the book "
        "and CI), from each notebook's provenance.\n",
    ]
    for slug, title, t, times in chapters:
        lines.append(f"## {title}\n")
        lines.append(f"Chapter {{doc}}`chapters/{slug}/index`.\n")
        lines.append("**Prerequisites.** " + "; ".join(t["prerequisites"]) + ".\n")
        lines.append("**A 90-minute session.**\n")
        lines += [f"{i}. {step}" for i, step in enumerate(t["session"], 1)]
        lines.append("")
        lines.append("**Exercises that fit.** " + ", ".join(f"{{ref}}`{x}`" for x in t["exercises"]) + ".\n")
        lines.append("**Run times.** " + "; ".join(f"`{s}`: {v}" for s, v in times.items()) + ".\n")
    return "\n".join(lines)
