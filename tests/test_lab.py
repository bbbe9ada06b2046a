"""`make lab`: JupyterLab serves the chapters' MyST notebooks as notebooks (jupytext), no .ipynb."""

import json
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lib import ROOT, build


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_lab_opens_a_myst_chapter_as_a_notebook(tmp_path):
    pytest.importorskip("jupyterlab")
    port, token = free_port(), secrets.token_hex(8)
    jupyter = Path(sys.executable).with_name("jupyter")
    proc = subprocess.Popen([str(jupyter), "lab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
                             f"--IdentityProvider.token={token}", f"--notebook-dir={ROOT / 'chapters'}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={"HOME": str(tmp_path), "PATH": str(jupyter.parent) + ":/usr/bin:/bin"})
    slug = build.chapters()[0]
    url = f"http://127.0.0.1:{port}/api/contents/{slug}/theory.md?type=notebook&content=1&token={token}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    model = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within a minute")
    finally:
        proc.terminate()
        proc.wait(10)
    assert model["type"] == "notebook"
    cells = model["content"]["cells"]
    assert cells[0]["cell_type"] == "markdown" and cells[0]["source"].startswith("# ")
    assert any("parameters" in c["metadata"].get("tags", []) for c in cells)  # the scale/seed knobs


def test_lab_overrides_open_markdown_as_notebooks():
    cfg = json.loads((ROOT / ".jupyter" / "lab-overrides.json").read_text())
    viewers = cfg["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["markdown"] == "Jupytext Notebook"
