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


#: Environment variable under which :func:`explore` draws its static default figure only (the
#: pipeline and the test suite set it, so that the rendered book shows a figure and a rerun under
#: nbval prints what papermill printed).
STATIC_ENV = "BOOK_STATIC"


def _slider(name: str, spec):
    """An ipywidgets slider from ``(low, high, default)`` or ``(low, high, step, default)``."""
    import ipywidgets as w

    if not isinstance(spec, tuple) or len(spec) not in (3, 4):
        raise ValueError(f"slider {name!r}: expected (low, high, default) or (low, high, step, default), got {spec!r}")
    low, high, *rest = spec
    step, default = (rest if len(rest) == 2 else (None, rest[0]))
    if not low <= default <= high:
        raise ValueError(f"slider {name!r}: default {default} is outside [{low}, {high}]")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high, default)):
        return w.IntSlider(value=default, min=low, max=high, step=step or 1, description=name,
                           continuous_update=False)
    step = step or (high - low) / 100
    return w.FloatSlider(value=default, min=low, max=high, step=step, description=name,
                         continuous_update=False, readout_format=".3g")


def _named(draw, names):
    """``draw`` as a plain function of exactly the sliders' parameters, with a name: ipywidgets
    needs a ``__name__`` (a ``functools.partial`` or a callable object has none) and makes a
    widget for every parameter with a default in the signature (a partial's bound keywords)."""
    import inspect

    def call(**values):
        return draw(**values)

    call.__name__ = getattr(draw, "__name__", None) or getattr(getattr(draw, "func", None), "__name__", "draw")
    call.__signature__ = inspect.Signature([inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY)
                                            for n in names])
    call.__doc__ = getattr(draw, "__doc__", None)
    return call


def explore(draw, **sliders):
    """An interactive explorer of a model: sliders over its parameters, one figure per setting.

    In Jupyter (with ipywidgets) the sliders redraw ``draw(**values)``. Where the environment
    variable ``BOOK_STATIC`` is set -- in the book's pipeline and its tests -- it draws the
    default figure once, so that the rendered book shows it as a static figure.

    Args:
        draw: a callable of the parameters (keyword arguments) that draws one figure and calls
            ``plt.show()``: a function, a ``functools.partial`` or any callable object.
        **sliders: for each parameter, ``(low, high, default)`` or ``(low, high, step, default)``;
            integers give an integer slider, whose range is widened to take a default outside it
            (a notebook's seed of 7919 on a ``(0, 9, seed)`` slider).

    Returns:
        The ``ipywidgets.interactive`` object in Jupyter, ``None`` in the static case.

    Raises:
        ValueError: for a malformed slider or a default outside its range.
    """
    import os

    specs = {name: spec for name, spec in sliders.items()}
    if not specs:
        raise ValueError("explore needs at least one slider")
    defaults = {}
    for name, spec in specs.items():
        if not isinstance(spec, tuple) or len(spec) not in (3, 4):
            raise ValueError(f"slider {name!r}: expected (low, high, default) or (low, high, step, default), "
                             f"got {spec!r}")
        low, high, default = spec[0], spec[1], spec[-1]
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high, default))
        if ints and not low <= default <= high:
            # an integer default outside the range (a notebook's seed of 7919 on a 0..9 slider)
            # widens the range to include it: the notebook's own setting always works
            low, high = min(low, default), max(high, default)
            specs[name] = (low, high, *spec[2:])
        if not low <= default <= high:
            raise ValueError(f"slider {name!r}: default {default} is outside [{low}, {high}]")
        defaults[name] = default
    if os.environ.get(STATIC_ENV, "") not in ("", "0"):
        draw(**defaults)
        return None
    try:
        import ipywidgets as w
    except ImportError:  # pragma: no cover - ipywidgets is pinned in requirements.txt
        draw(**defaults)
        return None
    ui = w.interactive(_named(draw, specs), **{name: _slider(name, spec) for name, spec in specs.items()})
    from IPython.display import display

    display(ui)
    return ui
