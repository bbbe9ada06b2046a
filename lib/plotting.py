"""One matplotlib style for the whole book.

Call :func:`setup` once at the top of a notebook. Colours come from a colour-blind-safe palette
(Okabe & Ito), fonts and sizes are fixed, and figures are rendered as PNG at a fixed resolution so
that the book looks the same everywhere.
"""

from __future__ import annotations

import matplotlib as mpl

#: Okabe-Ito colour-blind-safe palette.
PALETTE: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")

STYLE: dict = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.constrained_layout.use": True,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "image.cmap": "viridis",
    "svg.hashsalt": "book",
}


def setup() -> None:
    """Apply the book's style and the inline PNG backend settings (idempotent)."""
    mpl.rcParams.update(STYLE)
    try:  # inside IPython: crisp PNGs, no metadata that changes between runs
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")
    except Exception:  # pragma: no cover - outside IPython
        pass


def color(i: int) -> str:
    """The ``i``-th colour of the book's palette (cycling)."""
    return PALETTE[i % len(PALETTE)]
