"""Every chapter follows the book's anatomy (DESIGN.md, CONTRIBUTING.md)."""

import ast
import importlib
import json
import re
import subprocess
from pathlib import Path

import jupytext
import pytest

import lib
from lib import ROOT, build, claims, scales

SLUGS = build.chapters()


def test_toc_and_chapter_folders_agree_and_slugs_are_the_designs():
    assert SLUGS, "no chapter is listed in _toc.yml"
    for slug in SLUGS:  # part, paper and title come from the chapter's own files
        info = build.chapter_info(slug)
        assert info.part and info.title and info.citation[-4:].isdigit(), info
    # a draft folder may exist in a working tree, but every committed chapter is in the book
    tracked = subprocess.run(["git", "ls-files", "chapters"], cwd=ROOT, capture_output=True, text=True).stdout
    committed = {Path(f).parts[1] for f in tracked.split() if len(Path(f).parts) > 2}
    assert committed <= set(SLUGS), f"committed chapters missing from _toc.yml: {sorted(committed - set(SLUGS))}"


def test_only_markdown_notebooks_are_committed():
    tracked = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert not tracked, f".ipynb files are committed (only the MyST .md is): {tracked}"


@pytest.mark.parametrize("slug", SLUGS)
def test_chapter_has_its_four_files(slug):
    for f in ("index.md", "theory.md", "reproduce.md", "claims.yml"):
        assert (ROOT / "chapters" / slug / f).is_file(), f"chapters/{slug}/{f} is missing"


#: The longest code line of a notebook: what the book's page shows without scrolling sideways.
MAX_CODE_LINE = 88


def _md_line(slug: str, name: str, line: str) -> int:
    """The line number of ``line`` in the notebook's MyST source (first occurrence)."""
    lines = (ROOT / "chapters" / slug / f"{name}.md").read_text().splitlines()
    return next((i for i, s in enumerate(lines, 1) if s == line), 0)


@pytest.mark.parametrize("slug", SLUGS)
@pytest.mark.parametrize("name", build.NOTEBOOKS)
def test_notebook_grammar(slug, name):
    nb = jupytext.read(ROOT / "chapters" / slug / f"{name}.md")
    assert nb.metadata["jupytext"]["formats"] == "ipynb,md:myst"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    first = code[0]
    assert "parameters" in first.metadata.get("tags", []), "the first code cell must be tagged 'parameters'"
    tree = ast.parse(first.source)
    names = {}
    for stmt in tree.body:
        assert isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant), \
            "the parameters cell holds plain literal assignments only"
        names[stmt.targets[0].id] = stmt.value.value
    assert names.get("scale") == "book" and names.get("seed") == 0
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.lstrip().startswith("# "), \
        "a notebook opens with its title and explains before it computes"
    assert "provenance.show" in code[-1].source, "the last cell shows the provenance"
    long = [(i, line) for c in code for i, line in enumerate(c.source.splitlines(), 1)
            if len(line) > MAX_CODE_LINE]
    if long:
        pytest.fail("\n".join(
            [f"chapters/{slug}/{name}.md: code lines longer than {MAX_CODE_LINE} characters (the page "
             f"shows about {MAX_CODE_LINE}; reflow them):"]
            + [f"  line {_md_line(slug, name, line)}: {line[:60]}..." for _, line in long]))
    lengths = sorted(len(c.source.strip().splitlines()) for c in code)
    assert lengths[len(lengths) // 2] < 10, f"median code cell has {lengths[len(lengths) // 2]} lines (>= 10)"


@pytest.mark.parametrize("slug", SLUGS)
def test_theory_has_exercises_with_solutions(slug):
    text = (ROOT / "chapters" / slug / "theory.md").read_text()
    labels = re.findall(r"```\{exercise\}[^\n]*\n:label: ([\w-]+)", text)
    assert len(labels) >= 3, f"{slug}: {len(labels)} exercises, expected at least 3"
    for label in labels:
        assert re.search(r"\{solution(-start)?\} " + re.escape(label) + r"\b", text), f"{slug}: no solution for {label}"


@pytest.mark.parametrize("slug", SLUGS)
def test_reproduce_measures_every_claim_and_reports(slug):
    text = (ROOT / "chapters" / slug / "reproduce.md").read_text()
    _, cs = claims.load(ROOT / "chapters" / slug / "claims.yml")
    for c in cs:
        assert f'"{c.id}"' in text or f"'{c.id}'" in text, f"{slug}: claim {c.id} is never recorded in reproduce.md"
    assert "card.report()" in text


@pytest.mark.parametrize("slug", SLUGS)
def test_landing_page_cites_the_paper_and_links_the_notebooks(slug):
    header, _ = claims.load(ROOT / "chapters" / slug / "claims.yml")
    text = (ROOT / "chapters" / slug / "index.md").read_text()
    assert f"{{cite}}`{header['paper']}" in text or f"{{cite:p}}`{header['paper']}" in text or \
        f"{{cite:t}}`{header['paper']}" in text
    assert "theory" in text and "reproduce" in text
    bib = (ROOT / "references.bib").read_text()
    assert "{" + header["paper"] + "," in bib, f"{header['paper']} is not in references.bib"


LIB = Path(lib.__file__).parent
PROTOCOLS = sorted(p.stem for p in (LIB / "protocols").glob("*.py") if "\ndef preset(" in p.read_text())


def test_every_chapter_has_a_protocol_with_presets():
    assert {s.replace("-", "_") for s in SLUGS} <= set(PROTOCOLS)


@pytest.mark.parametrize("module", PROTOCOLS)
def test_presets_exist_for_every_scale_and_unknown_scales_are_refused(module):
    mod = importlib.import_module(f"lib.protocols.{module}")
    presets = [mod.preset(s) for s in scales.SCALES]
    assert all(p is not None for p in presets)
    assert presets[0] != presets[1], "ci and book presets should differ"
    with pytest.raises(ValueError, match="expected one of ci, book, paper"):
        mod.preset("huge")


@pytest.mark.parametrize("slug", SLUGS)
def test_api_links_point_at_documented_objects(slug):
    """Every {py:func}/{py:class}/{py:mod}/{py:meth} link of a chapter names an object that the
    API reference documents (it exists and, where its module has ``__all__``, is listed there)."""
    text = "".join((ROOT / "chapters" / slug / f).read_text() for f in ("index.md", "theory.md", "reproduce.md"))
    for role, body in re.findall(r"\{py:(func|class|mod|meth|data)\}`([^`]+)`", text):
        target = body.split("<")[-1].rstrip(">").strip().lstrip("~")
        parts = target.split(".")
        if role == "mod":
            importlib.import_module(target)
            continue
        for i in range(len(parts) - 1, 0, -1):
            try:
                mod = importlib.import_module(".".join(parts[:i]))
                break
            except ImportError:
                continue
        obj = mod
        for name in parts[i:]:
            assert hasattr(obj, name), f"{slug}: {{py:{role}}}`{body}` does not exist"
            obj = getattr(obj, name)
        top = getattr(mod, parts[i])
        if callable(top) and hasattr(top, "__module__"):
            assert top.__module__ == mod.__name__, \
                f"{slug}: link {target} to where it is defined, {top.__module__} (autodoc documents it there)"
        public = getattr(mod, "__all__", None)
        if public is not None:
            assert parts[i] in public, f"{slug}: {parts[i]} is not in {mod.__name__}.__all__ (autodoc skips it)"


@pytest.mark.parametrize("slug", SLUGS)
def test_theory_has_an_interactive_explorer(slug):
    nb = jupytext.read(ROOT / "chapters" / slug / "theory.md")
    assert any("plotting.explore(" in c.source for c in nb.cells if c.cell_type == "code"), \
        f"{slug}: theory.md has no plotting.explore(...) cell (CONTRIBUTING.md, the adding-a-chapter checklist)"


#: The seeds over which ``make test`` measures every chapter's claims (its sweep step): two
#: small ones and one far from 0 (tests/test_live.py runs the theory notebooks there).
SWEEP_SEEDS = [0, 1, 7919]


@pytest.mark.parametrize("slug", build.chapters())
def test_ci_claims_hold_and_their_controls_fail_over_three_seeds(slug):
    path = build.sweep_dir("ci") / f"{slug}.json"
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} is missing: `make test` measures the claims at seeds "
                    "0, 1, 7919 (python -m lib.build --scale ci --seeds 0,1,7919 --notebook reproduce) "
                    "before pytest")
    sweep = json.loads(path.read_text())
    assert sweep["seeds"] == SWEEP_SEEDS
    _, cs = claims.load(ROOT / "chapters" / slug / "claims.yml")
    entries = {e["id"]: e for e in sweep["claims"]}
    for c in cs:
        if "ci" not in c.scales:
            continue
        e = entries[c.id]
        assert e["n_pass"] == len(SWEEP_SEEDS), f"{slug}/{c.id}: passes at {e['n_pass']} of seeds {SWEEP_SEEDS}"
        assert not e.get("n_control_passes"), f"{slug}/{c.id}: its control meets the criterion at some seed"


@pytest.mark.parametrize("slug", build.chapters())
def test_every_claim_names_a_control_or_says_why_it_has_none(slug):
    _, cs = claims.load(ROOT / "chapters" / slug / "claims.yml")
    bare = [c.id for c in cs if not (c.control or c.no_control)]
    assert not bare, f"{slug}: claims without a control or a no_control reason: {bare} (CONTRIBUTING, Claims)"
