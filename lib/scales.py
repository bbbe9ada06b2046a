"""The three scales of the book and how a chapter picks its preset.

Every chapter runs at one of three scales with the same meaning everywhere (see the README):

- ``ci``: the test suite; every code path runs and the ci claims are checked, under 60 s a notebook;
- ``book``: the rendered book, the default, under 10 minutes a chapter on a 2-core laptop;
- ``paper``: the paper's own sizes, for a GPU or a cluster; documented and runnable, not run in CI.
"""

from __future__ import annotations

from typing import Mapping, TypeVar

SCALES: tuple[str, ...] = ("ci", "book", "paper")
DEFAULT_SCALE = "book"

T = TypeVar("T")


def check(scale: str) -> str:
    """Return ``scale`` if it is one of :data:`SCALES`, else raise a ``ValueError`` naming them.

    Args:
        scale: the requested scale.

    Returns:
        The same string.
    """
    if not isinstance(scale, str) or scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    return scale


def pick(presets: Mapping[str, T], scale: str) -> T:
    """Choose the preset of ``scale`` from a dict keyed by scale.

    Args:
        presets: one entry per scale, e.g. ``{"ci": Preset(...), "book": ..., "paper": ...}``.
        scale: the requested scale.

    Returns:
        ``presets[scale]``.

    Raises:
        ValueError: if ``scale`` is not a valid scale, or the dict lacks it.
    """
    check(scale)
    missing = [s for s in SCALES if s not in presets]
    if missing:
        raise ValueError(f"presets lack the scale(s) {', '.join(missing)}; every chapter defines {', '.join(SCALES)}")
    return presets[scale]
