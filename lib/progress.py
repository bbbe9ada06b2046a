"""Progress bars for long loops, silenced in the rendered book.

The pipeline sets ``TQDM_DISABLE=1`` in every kernel it starts, so executed notebooks carry no
bars (whose timings would differ between runs); a reader in Jupyter sees them.
"""

from __future__ import annotations

from typing import Iterable, TypeVar

from tqdm.std import tqdm  # text bars: work in a terminal and in Jupyter without ipywidgets

T = TypeVar("T")


def bar(iterable: Iterable[T], desc: str | None = None, total: int | None = None, **kwargs) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm progress bar (disabled where ``TQDM_DISABLE`` is set).

    Args:
        iterable: what to iterate over.
        desc: a short label shown before the bar.
        total: the number of items, where ``len(iterable)`` is not defined.
        **kwargs: passed on to ``tqdm``.

    Returns:
        An iterable that yields the same items.
    """
    return tqdm(iterable, desc=desc, total=total, **kwargs)
