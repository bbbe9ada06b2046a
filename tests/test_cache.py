"""The per-chapter cache and verdicts judged at the scorecard, on a small book of two chapters.

The book is built in a temporary folder with its own copy of ``lib/`` (so that the test can
edit a science module without touching the real one): chapter A imports ``lib.demo_a``, which
imports ``lib.demo_core``; chapter B imports ``lib.demo_b``.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_pipeline import HEADER, cell

from lib import ROOT

A, B = "surprise-taxonomy", "gof-point-processes"

CLAIMS = textwrap.dedent(
    """\
    chapter: {slug}
    paper: demo2020
    claims:
      - id: value-is-seven
        statement: The module returns seven.
        where: nowhere
        paper_value: 7
        metric: the value
        criterion: {{op: "==", value: 7}}
        scales: [ci]
    """
)


def reproduce(module: str, slug: str) -> str:
    code = (f"from lib import claims, {module}\n"
            f"card = claims.Scorecard({slug!r}, scale=scale, seed=seed)\n"
            f"card.record('value-is-seven', {module}.value())\n"
            "card.report()")
    return code


def make_book(root: Path) -> None:
    shutil.copytree(ROOT / "lib", root / "lib", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "lib" / "demo_core.py").write_text('"""Core."""\n\n\ndef seven():\n    return 7\n')
    (root / "lib" / "demo_a.py").write_text('"""A."""\nfrom . import demo_core\n\n\ndef value():\n'
                                            '    return demo_core.seven()\n')
    (root / "lib" / "demo_b.py").write_text('"""B."""\n\n\ndef value():\n    return 7\n')
    toc = "format: jb-book\nroot: intro\nparts:\n  - caption: S\n    chapters:\n"
    params = cell('scale = "book"\nseed = 0', ["parameters"])
    for slug, module in ((A, "demo_a"), (B, "demo_b")):
        toc += (f"      - file: chapters/{slug}/index\n        sections:\n"
                f"          - file: chapters/{slug}/theory\n          - file: chapters/{slug}/reproduce\n")
        ch = root / "chapters" / slug
        ch.mkdir(parents=True)
        (ch / "claims.yml").write_text(CLAIMS.format(slug=slug))
        (ch / "theory.md").write_text(HEADER + "\n# Theory\n\n" + params + cell("print(scale)"))
        (ch / "reproduce.md").write_text(HEADER + "\n# Reproduce\n\n" + params
                                         + cell(reproduce(module, slug)))
    (root / "_toc.yml").write_text(toc)


def build(root: Path, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("BOOK_ROOT", "BOOK_RESULTS_DIR")}
    env.update(PYTHONPATH=str(root), TQDM_DISABLE="1", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "lib.build", "--no-render", "--scale", "ci", "--jobs", "2",
                           *args], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def statuses(res: subprocess.CompletedProcess) -> dict[str, str]:
    out = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and "/" in parts[0] and parts[1] in ("executed", "cached", "failed"):
            out[parts[0]] = parts[1]
    return out


def rows(root: Path) -> dict[str, dict]:
    code = "import json; from lib import build; print(json.dumps(build.scorecard_rows('ci')))"
    env = {**{k: v for k, v in os.environ.items() if k != "BOOK_ROOT"}, "PYTHONPATH": str(root)}
    r = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return {row["chapter"]: row for row in json.loads(r.stdout)}


@pytest.mark.slow
def test_an_edit_reexecutes_only_the_notebooks_that_import_it(tmp_path):
    make_book(tmp_path)
    first = build(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert set(statuses(first).values()) == {"executed"} and len(statuses(first)) == 4

    # a docstring fix in the science that only chapter A imports (through demo_a)
    core = tmp_path / "lib" / "demo_core.py"
    core.write_text(core.read_text().replace('"""Core."""', '"""Core: returns seven."""'))
    second = build(tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert statuses(second) == {f"{A}/theory": "cached", f"{A}/reproduce": "executed",
                                f"{B}/theory": "cached", f"{B}/reproduce": "cached"}, second.stdout

    # a truncated or deleted published output is never trusted: that notebook runs again
    out_b = tmp_path / "_build" / "ci" / "seed-0" / "chapters" / B
    m = out_b / "reproduce.measurements.json"
    m.write_text(m.read_text()[:20])
    assert statuses(build(tmp_path))[f"{B}/reproduce"] == "executed"
    m.unlink()
    third = build(tmp_path)
    assert statuses(third) == {f"{A}/theory": "cached", f"{A}/reproduce": "cached",
                               f"{B}/theory": "cached", f"{B}/reproduce": "executed"}, third.stdout


@pytest.mark.slow
def test_a_criterion_edit_rejudges_without_any_execution(tmp_path):
    make_book(tmp_path)
    assert build(tmp_path).returncode == 0
    assert rows(tmp_path)[A]["verdict"] == "reproduced"

    yml = tmp_path / "chapters" / A / "claims.yml"
    yml.write_text(yml.read_text().replace("value: 7}", "value: 8}"))
    again = build(tmp_path)
    assert set(statuses(again).values()) == {"cached"}, again.stdout  # nothing re-executed
    after = rows(tmp_path)
    assert after[A]["verdict"] == "not reproduced" and after[A]["value"] == 7
    assert after[A]["criterion"] == "== 8" and after[B]["verdict"] == "reproduced"
    # at ci a ci claim that fails its (new) criterion fails the build
    assert again.returncode == 1 and f"{A}/value-is-seven: not reproduced" in again.stderr

    # a statement edit shows up too, still without execution
    yml.write_text(yml.read_text().replace("The module returns seven.", "Seven it is."))
    assert rows(tmp_path)[A]["statement"] == "Seven it is."


@pytest.mark.slow
def test_a_claim_never_recorded_fails_the_build(tmp_path):
    make_book(tmp_path)
    nb = tmp_path / "chapters" / B / "reproduce.md"
    nb.write_text(nb.read_text().replace("card.record('value-is-seven', demo_b.value())\n", ""))
    # the notebook itself is told not to raise, so that the build's own judgement is tested
    nb.write_text(nb.read_text().replace("card.report()", "card.report(raise_on_failure=False)"))
    res = build(tmp_path, "--slug", B)
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"{B}/value-is-seven: not measured" in res.stderr
    assert rows(tmp_path)[B]["verdict"] == "not measured"


def test_keys_follow_imports_and_the_kit(tmp_path):
    make_book(tmp_path)
    code = ("import json; from lib import build\n"
            "nbs = {nb.label: nb for nb in build.notebooks('ci', 0)}\n"
            "print(json.dumps({k: sorted(build.input_hashes(nb)) for k, nb in nbs.items()}))")
    env = {**{k: v for k, v in os.environ.items() if k != "BOOK_ROOT"}, "PYTHONPATH": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    deps = json.loads(r.stdout)
    a, b = deps[f"{A}/reproduce"], deps[f"{B}/reproduce"]
    assert "lib/demo_a.py" in a and "lib/demo_core.py" in a and "lib/demo_b.py" not in a
    assert "lib/demo_b.py" in b and "lib/demo_core.py" not in b and "lib/demo_a.py" not in b
    for kit in ("lib/__init__.py", "lib/claims.py", "lib/scales.py", "lib/data.py", "lib/plotting.py"):
        assert kit in a and kit in b and kit in deps[f"{A}/theory"]
    assert not any("claims.yml" in k for k in a)


def _fake_fashion_mnist(folder: Path) -> None:
    """Four tiny IDX files that the data kit reads as Fashion-MNIST (6 training, 4 test images)."""
    import gzip

    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for split, n in (("train", 6), ("t10k", 4)):
        for kind, shape in (("images-idx3", (n, 28, 28)), ("labels-idx1", (n,))):
            arr = rng.integers(0, 10 if kind.startswith("labels") else 256, shape).astype(np.uint8)
            head = (0x0800 | arr.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
            with gzip.open(folder / f"{split}-{kind}-ubyte.gz", "wb") as f:
                f.write(head + arr.tobytes())


@pytest.mark.slow
def test_a_dataset_that_appears_reexecutes_only_the_notebooks_that_loaded_it(tmp_path):
    book, store = tmp_path / "book", tmp_path / "store"
    make_book(book)
    store.mkdir()
    nb = book / "chapters" / A / "reproduce.md"
    nb.write_text(nb.read_text().replace(
        "card.report()", "ds = data.load('fashion-mnist')\nprint(ds.used)\ncard.report()").replace(
        "from lib import claims,", "from lib import claims, data,"))
    # a machine without the system copy, whose data folder has no Fashion-MNIST yet
    env = {"BOOK_SYSTEM_DATA": "0", "BOOK_DATA_DIR": str(store)}
    first = build(book, env_extra=env)
    assert first.returncode == 0, first.stdout + first.stderr
    key = json.loads((book / "_build/ci/seed-0/chapters" / A / "reproduce.key").read_text())
    assert key["data"]["fashion-mnist"]["used"] == "mnist-sample"

    _fake_fashion_mnist(store / "fashion-mnist")  # the real set becomes visible
    second = build(book, env_extra=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert statuses(second) == {f"{A}/theory": "cached", f"{A}/reproduce": "executed",
                                f"{B}/theory": "cached", f"{B}/reproduce": "cached"}, second.stdout
    key = json.loads((book / "_build/ci/seed-0/chapters" / A / "reproduce.key").read_text())
    assert key["data"]["fashion-mnist"]["used"] == "fashion-mnist"
    assert set(statuses(build(book, env_extra=env)).values()) == {"cached"}  # nothing changed since

    shutil.rmtree(store / "fashion-mnist")  # and gone again: back to the stand-in
    third = build(book, env_extra=env)
    assert statuses(third)[f"{A}/reproduce"] == "executed" and statuses(third)[f"{B}/reproduce"] == "cached"


@pytest.mark.slow
def test_a_new_chapter_needs_only_its_folder_its_protocol_and_a_toc_entry(tmp_path):
    """No registry to edit: the pipeline reads the new chapter's part, paper and title from its files."""
    make_book(tmp_path)
    shutil.copy(ROOT / "references.bib", tmp_path / "references.bib")
    slug = "a-new-chapter"
    ch = tmp_path / "chapters" / slug
    shutil.copytree(tmp_path / "chapters" / B, ch)
    (ch / "claims.yml").write_text(CLAIMS.format(slug=slug))
    (ch / "index.md").write_text("# A chapter nobody planned\n\nIt reuses a paper of the book.\n")
    for s in (A, B, slug):  # the scorecard cites each chapter's paper from references.bib
        yml = tmp_path / "chapters" / s / "claims.yml"
        yml.write_text(yml.read_text().replace("demo2020", "gerhard2010rescaling"))
        if s != slug:
            (tmp_path / "chapters" / s / "index.md").write_text(f"# Demo {s}\n")
    for name in ("theory.md", "reproduce.md"):
        (ch / name).write_text((ch / name).read_text().replace(repr(B), repr(slug)))
    (tmp_path / "lib" / "protocols" / "a_new_chapter.py").write_text(
        '"""The new chapter\'s presets."""\n\n\ndef preset(scale):\n    return {"scale": scale}\n')
    toc = tmp_path / "_toc.yml"
    toc.write_text(toc.read_text() + f"  - caption: A new part\n    chapters:\n      - file: chapters/{slug}/index\n"
                   f"        sections:\n          - file: chapters/{slug}/theory\n"
                   f"          - file: chapters/{slug}/reproduce\n")
    res = build(tmp_path, "--slug", slug)
    assert res.returncode == 0, res.stdout + res.stderr
    assert statuses(res) == {f"{slug}/theory": "executed", f"{slug}/reproduce": "executed"}
    code = ("from lib import build; i = build.chapter_info('a-new-chapter'); print(i.part, '|', i.label); "
            "print('## ' + i.label in build.scorecard_markdown('ci'))")
    env = {**{k: v for k, v in os.environ.items() if k != "BOOK_ROOT"}, "PYTHONPATH": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["A new part | Gerhard & Gerstner 2010: A chapter nobody planned", "True"]
