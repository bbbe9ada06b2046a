"""Shared library of the executable book *Computational neuroscience, reproduced*.

One module per model family (``gof``, ``surprise``, ``ttfs``, ...) and a few helpers that every
chapter uses: ``claims`` (the scorecard), ``scales`` (ci / book / paper presets), ``data`` (datasets,
offline first), ``plotting`` (one matplotlib style), ``provenance`` (what produced a number),
``progress`` (progress bars) and ``build`` (the pipeline behind ``make book``).
"""

import os
from pathlib import Path

__all__ = ["ROOT"]

#: The book's root: the folder that holds ``chapters/``, ``_toc.yml`` and ``_build/``. It is the
#: repository that holds ``lib/``, unless ``$BOOK_ROOT`` names another (the pipeline's tests use
#: that to build a small book of their own).
ROOT = Path(os.environ.get("BOOK_ROOT") or Path(__file__).resolve().parents[1]).resolve()
