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
