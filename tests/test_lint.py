"""The library, tests, benchmarks and the Sphinx extension pass ruff (settings in pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

from lib import ROOT


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    res = subprocess.run([ruff, "check", "lib", "tests", "benchmarks", "_ext", "conftest.py"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def _declared() -> dict[str, "object"]:
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"] + sum(project["optional-dependencies"].values(), [])]
    return {_norm(r.name): r for r in reqs}


def _norm(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_direct_dependency_is_declared_once_and_locked():
    """pyproject.toml declares the direct dependencies; requirements.txt (the lock) pins each of them
    at a version its bound allows."""
    declared = _declared()
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[_norm(name)] = version.strip()
    for name, req in declared.items():
        assert name in pins, f"{name} is declared in pyproject.toml but not locked in requirements.txt (make lock)"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} violates {req}"
    assert "torchvision" not in pins


def test_every_third_party_import_is_a_declared_dependency():
    """What lib, the tests, the benchmarks, the Sphinx extension and the notebooks import comes from a
    dependency declared in pyproject.toml, not from another package's dependencies."""
    import ast
    from importlib.metadata import packages_distributions

    import jupytext

    sources = [p.read_text() for d in ("lib", "tests", "benchmarks", "_ext") for p in (ROOT / d).rglob("*.py")]
    sources.append((ROOT / "conftest.py").read_text())
    for md in ROOT.glob("chapters/*/*.md"):
        if md.name in ("theory.md", "reproduce.md"):
            cells = jupytext.read(md).cells
            sources.append("\n".join(c.source for c in cells if c.cell_type == "code" and not c.source.startswith("%")))
    modules = set()
    for src in sources:
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    dists = packages_distributions()
    declared = set(_declared())
    undeclared = {m: dists[m] for m in modules if m in dists and m != "lib"
                  and not any(_norm(d) in declared for d in dists[m])}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_ruff_is_clean_on_the_notebooks_code(tmp_path):
    """The notebooks' code cells pass ruff's pyflakes rules (unused imports, undefined names)."""
    import jupytext

    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    for md in sorted(ROOT.glob("chapters/*/*.md")):
        if md.name in ("theory.md", "reproduce.md"):
            out = tmp_path / f"{md.parent.name}__{md.stem}.py"
            jupytext.write(jupytext.read(md), out, fmt="py:percent")
    res = subprocess.run([ruff, "check", "--no-cache", "--isolated", "--select", "F,E9", "--output-format", "concise",
                          str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 0, "ruff on the notebooks (chapter__notebook.py):\n" + res.stdout + res.stderr
