"""The book's one seeding rule: every random stream is ``SeedSequence([seed, *stream])``.

A chapter has one seed, the notebook's ``seed`` parameter. Each independent source of randomness
in it (a network's initialisation, its mini-batches, a simulation, the draws of a control) is a
*stream*, named by a tuple of labels: non-negative ints (a run index, a task number) or short
strings (``"init"``, ``"batches"``). The stream's generator comes from
``numpy.random.SeedSequence([seed, *labels])``, with each string label replaced by its CRC-32.

Why this and not ``seed + i``: with arithmetic, seed 0's second run is seed 1's first run, so a
sweep over seeds re-uses draws and understates the spread. With the seed as the first word of
the entropy, two different seeds never share a stream, whatever the labels; and two different
label tuples under one seed are independent streams (SeedSequence hashes the whole tuple).

``rng(seed)`` with no labels is exactly ``numpy.random.default_rng(seed)``.

One caveat, numpy's: SeedSequence pads entropy shorter than its 4-word pool with zeros, so
under one seed a label tuple and the same tuple with trailing ``0`` labels are one stream
(``("init",)`` is ``("init", 0)``). Give each stream name the same number of labels everywhere.
Streams of *different* seeds never coincide.

The rule for arguments (CONTRIBUTING, "Seeds"): a protocol function takes the notebook's
``seed: int`` and derives each stream here; a science function takes either a
``numpy.random.Generator`` (``rng``) or a plain ``seed: int`` that it hands to
:func:`torch_generator` or :func:`rng` without arithmetic.
"""
from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported only when a torch generator is asked for
    import torch

__all__ = ["check_seed", "entropy", "sequence", "rng", "int_seed", "torch_generator"]


def check_seed(seed, name: str = "seed") -> int:
    """Return ``seed`` as an int, or raise ``ValueError`` unless it is a non-negative int."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{name} must be a non-negative int, got {seed!r}")
    return int(seed)


def _label(x) -> int:
    if isinstance(x, str):
        if not x:
            raise ValueError("a stream label must be a non-empty string or a non-negative int, "
                             "got ''")
        return zlib.crc32(x.encode("utf-8"))
    return check_seed(x, "a stream label")


def entropy(seed: int, *stream) -> tuple[int, ...]:
    """The entropy words of a stream: ``(seed, *labels)`` with strings mapped to their CRC-32."""
    return (check_seed(seed), *(_label(x) for x in stream))


def sequence(seed: int, *stream) -> np.random.SeedSequence:
    """The ``numpy.random.SeedSequence`` of one stream (for ``spawn`` or ``generate_state``)."""
    words = entropy(seed, *stream)
    return np.random.SeedSequence(list(words) if stream else words[0])


def rng(seed: int, *stream) -> np.random.Generator:
    """A numpy generator for one stream: ``default_rng(SeedSequence([seed, *stream]))``.

    Example::

        init = seeds.rng(seed, "init", run)      # run's initialisation
        batches = seeds.rng(seed, "batches", run)
    """
    return np.random.default_rng(sequence(seed, *stream))


def int_seed(seed: int, *stream) -> int:
    """A 32-bit int derived from one stream, for an API that takes an int (a torch generator,
    a science function's ``seed``): the first word of the stream's ``generate_state``."""
    return int(sequence(seed, *stream).generate_state(1)[0])


def torch_generator(seed: int, *stream, device="cpu") -> "torch.Generator":
    """A ``torch.Generator`` on ``device`` for one stream.

    With no labels it is seeded with ``seed`` itself (``torch.Generator().manual_seed(seed)``);
    with labels, with :func:`int_seed` of the stream.
    """
    import torch

    value = int_seed(seed, *stream) if stream else check_seed(seed)
    return torch.Generator(device=device).manual_seed(value)
