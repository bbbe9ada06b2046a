"""The pipeline (`python -m lib.build`) on a small book of its own, built in a temporary folder."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEADER = textwrap.dedent(
    """\
    ---
    jupytext:
      formats: ipynb,md:myst
      text_representation:
        extension: .md
        format_name: myst
        format_version: 0.13
    kernelspec:
      display_name: Python 3
      language: python
      name: python3
    ---
    """
)

CLAIMS = textwrap.dedent(
    """\
    chapter: surprise-taxonomy
    paper: demo2020
    claims:
      - id: seed-is-injected
        statement: The pipeline injects the seed.
        where: nowhere
        paper_value: 7
        metric: the seed the notebook saw
        criterion: {op: "==", value: 7}
        scales: [ci]
    """
)


def cell(code, tags=None):
    meta = f":tags: [{', '.join(tags)}]\n\n" if tags else ""
    return f"```{{code-cell}} ipython3\n{meta}{code}\n```\n"


def make_book(root: Path, reproduce_body: str):
    ch = root / "chapters" / "surprise-taxonomy"
    ch.mkdir(parents=True)
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: S\n    chapters:\n"
        "      - file: chapters/surprise-taxonomy/index\n        sections:\n"
        "          - file: chapters/surprise-taxonomy/theory\n          - file: chapters/surprise-taxonomy/reproduce\n"
    )
    (ch / "claims.yml").write_text(CLAIMS)
    params = cell('scale = "book"\nseed = 0', ["parameters"])
    (ch / "theory.md").write_text(HEADER + "\n# Theory\n\n" + params + cell("print('theory', scale, seed)"))
    (ch / "reproduce.md").write_text(HEADER + "\n# Reproduce\n\n" + params + cell(reproduce_body))


def build(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BOOK_ROOT": str(root), "TQDM_DISABLE": "1"}
    return subprocess.run([sys.executable, "-m", "lib.build", "--no-render", *args], env=env,
                          capture_output=True, text=True, timeout=300)


GOOD = textwrap.dedent(
    """\
    from lib import claims
    card = claims.Scorecard("surprise-taxonomy", scale=scale, seed=seed)
    card.record("seed-is-injected", seed)
    card.report()"""
)


@pytest.mark.slow
def test_pipeline_executes_caches_and_reports_failures(tmp_path):
    make_book(tmp_path, GOOD)
    first = build(tmp_path, "--scale", "ci", "--seed", "7", "--jobs", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    out = tmp_path / "_build" / "ci" / "seed-7" / "chapters" / "surprise-taxonomy"
    executed = json.loads((out / "theory.ipynb").read_text())
    printed = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert "theory ci 7" in printed  # scale and seed were injected by papermill
    res = json.loads((out / "reproduce.measurements.json").read_text())
    assert res["measurements"][0] == {"id": "seed-is-injected", "value": 7, "detail": "", "data": ""}
    assert res["seed"] == 7 and "verdict" not in res["measurements"][0]  # measured, judged later
    prov = json.loads((out / "reproduce.provenance.json").read_text())
    assert prov["scale"] == "ci" and prov["seed"] == 7 and prov["wall_time_s"] > 0 and "numpy" in prov["packages"]
    assert "2 of 2 notebooks ok" in first.stdout

    again = build(tmp_path, "--scale", "ci", "--seed", "7")
    assert again.returncode == 0 and again.stdout.count("cached") == 2, again.stdout

    # A claim that fails at ci makes the notebook fail; the other notebook is untouched (cached),
    # the failure is reported with its cell, and the exit code is non-zero.
    (tmp_path / "chapters" / "surprise-taxonomy" / "reproduce.md").write_text(
        HEADER + "\n# R\n\n" + cell('scale = "book"\nseed = 0', ["parameters"]) + cell(GOOD.replace("seed)", "seed + 1)"))
    )
    broken = build(tmp_path, "--scale", "ci", "--seed", "7")
    assert broken.returncode == 1
    assert "FAILED surprise-taxonomy/reproduce" in broken.stderr and "ClaimFailure" in broken.stderr
    assert "seed-is-injected: not reproduced" in broken.stderr
    assert "surprise-taxonomy/theory" in broken.stdout and "cached" in broken.stdout
    assert (out / "reproduce.error.txt").exists() and not (out / "reproduce.key").exists()


def test_unknown_scale_and_slug_are_clear_errors(tmp_path):
    make_book(tmp_path, GOOD)
    bad_scale = build(tmp_path, "--scale", "huge")
    assert bad_scale.returncode == 2 and "expected one of ci, book, paper" in bad_scale.stderr
    bad_slug = build(tmp_path, "--scale", "ci", "--slug", "nope")
    assert bad_slug.returncode == 2 and "expected one of surprise-taxonomy" in bad_slug.stderr


def test_cache_key_changes_with_every_input(tmp_path, monkeypatch):
    make_book(tmp_path, GOOD)
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    code = (
        "from lib import build\n"
        "nb = build.notebooks('ci', {seed})[1]\n"
        "print(build.input_key(nb))\n"
    )

    def key(seed=0):
        r = subprocess.run([sys.executable, "-c", code.format(seed=seed)], capture_output=True, text=True,
                           env={**os.environ, "BOOK_ROOT": str(tmp_path)})
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    k0 = key()
    assert key() == k0
    assert key(seed=1) != k0
    # claims.yml is judged at the scorecard, not part of any notebook's key
    claims = tmp_path / "chapters" / "surprise-taxonomy" / "claims.yml"
    claims.write_text(claims.read_text().replace("value: 7", "value: 8"))
    assert key() == k0
    nb = tmp_path / "chapters" / "surprise-taxonomy" / "reproduce.md"
    nb.write_text(nb.read_text() + "\n")
    assert key() != k0


@pytest.mark.slow
def test_dask_executor_runs_the_same_notebooks(tmp_path):
    pytest.importorskip("dask.distributed")
    make_book(tmp_path, GOOD)
    res = build(tmp_path, "--scale", "ci", "--seed", "7", "--executor", "dask")
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads((tmp_path / "_build" / "ci" / "seed-7" / "chapters" / "surprise-taxonomy"
                      / "reproduce.measurements.json").read_text())
    assert out["measurements"][0]["value"] == 7
