"""Chapter protocols: one module per chapter, named after its slug (``-`` becomes ``_``).

A protocol holds what belongs to one chapter only: its presets per scale (a frozen dataclass per
scale, chosen by ``preset(scale)`` through :func:`lib.scales.pick`), its experiment pipelines (the
loops over the chapter's conditions, with progress bars) and its figure functions. It imports the
science modules (``lib.ttfs``, ``lib.gof``, ``lib.surprise``, ...) and the kit (``lib.claims``,
``lib.data``, ``lib.scales``, ``lib.progress``, ``lib.plotting``, ``lib.provenance``,
``lib.torchkit``), never another chapter's protocol. ``tests/test_layout.py`` checks these rules.

In a notebook::

    from lib.protocols import ttfs_exact_mapping as proto
    P = proto.preset(scale)
"""
