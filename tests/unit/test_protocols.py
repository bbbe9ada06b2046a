"""Unit tests of the chapter protocols (lib/protocols/): presets per scale and experiment helpers."""

from __future__ import annotations

import importlib
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pytest

import lib
from lib import gof, scales
from lib.protocols import gof_point_processes as gof_proto
from lib.protocols import surprise_taxonomy as surprise_proto
from lib.protocols import ttfs_exact_mapping as ttfs_proto

PROTOCOLS = sorted(p.stem for p in (Path(lib.__file__).parent / "protocols").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", PROTOCOLS)
def test_every_protocol_has_frozen_presets_for_every_scale_and_refuses_others(name):
    mod = importlib.import_module(f"lib.protocols.{name}")
    presets = [mod.preset(s) for s in scales.SCALES]
    assert presets[0] != presets[1], "ci and book presets should differ"
    field = next(iter(presets[0].__dataclass_fields__))
    with pytest.raises(FrozenInstanceError):
        setattr(presets[0], field, None)
    with pytest.raises(ValueError, match="expected one of ci, book, paper"):
        mod.preset("huge")


# ------------------------------------------------------------------------------------------------
# ttfs-exact-mapping
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", scales.SCALES)
def test_ttfs_presets(scale):
    p = ttfs_proto.preset(scale)
    assert isinstance(p, ttfs_proto.Preset)
    assert p.trials >= 1 and p.n_robust >= 1 and 0.5 in p.zetas


def test_ttfs_paper_preset_maps_lenet5_and_the_cifar_vgg():
    from lib import data

    nets = {n.name: n for n in ttfs_proto.preset("paper").extra_cnns}
    assert "valid" in nets["LeNet-5"].arch.paddings and nets["LeNet-5"].dataset == "mnist"
    assert nets["CIFAR-10 VGG15"].arch.input_range != (0.0, 1.0) and nets["CIFAR-10 VGG15"].dataset == "cifar-10"
    ci = ttfs_proto.preset("ci").extra_cnns  # the same code path, small, at ci
    assert ci and "valid" in ci[0].arch.paddings and ci[0].arch.input_range != (0.0, 1.0)
    assert all(n.dataset in data.DATASETS for s in scales.SCALES for n in ttfs_proto.preset(s).extra_cnns)
    assert all(ttfs_proto.preset(s).cnn.bn_negative > 0 for s in ("ci", "book"))  # min-pools are exercised


def test_ttfs_pool_ablation_breaks_a_trained_net_with_min_pools():
    from lib import data, ttfs

    ds = data.load("digits")
    arch = ttfs.Architecture((1, 8, 8), conv=(4, "P"), dense=(8,), bn="after", bn_negative=0.5)
    p = ttfs_proto.pipeline(arch, ttfs.Training(epochs=3, batch_size=64, lr=3e-3), ds, seed=3, name="t")
    assert p.exact.error_ratio <= 1.0 and p.exact.early_images == 0
    n_min, ablated = ttfs_proto.pool_ablation(p, ds.x_test, ds.y_test, p.ann_logits)
    assert n_min == 2 and ablated.error_ratio > 1e3


def test_degrades_monotonically():
    assert ttfs_proto.degrades_monotonically(0.9, np.array([[0.9, 0.88], [0.7, 0.72], [0.3, 0.32]]))
    assert not ttfs_proto.degrades_monotonically(0.9, np.array([[0.5, 0.5], [0.8, 0.8]]))
    assert not ttfs_proto.degrades_monotonically(0.9, np.array([[0.9, 0.9]]))
    with pytest.raises(ValueError, match="levels, trials"):
        ttfs_proto.degrades_monotonically(0.9, np.array([0.5, 0.4]))


# ------------------------------------------------------------------------------------------------
# gof-point-processes
# ------------------------------------------------------------------------------------------------


def test_gof_experiment_helpers_shapes_and_determinism():
    cell = gof_proto.size_cell(gof.BIAS_66HZ, 2e-3, 2.0, 5, np.random.default_rng(0))
    again = gof_proto.size_cell(gof.BIAS_66HZ, 2e-3, 2.0, 5, np.random.default_rng(0))
    assert cell == again and set(cell.rejections) == set(gof.TESTS)
    assert gof_proto.grid_cells(gof_proto.preset("book"))[-2:] == [(-3.0, 2e-3), (-3.0, 5e-3)]
    pw = gof_proto.power_vs_length(gof.glm_at(), (1.0, 2.0), 3, np.random.default_rng(1))
    assert pw.power.shape == (len(gof_proto.ALTERNATIVES), 2, len(gof.TESTS))
    assert np.all((pw.power >= 0) & (pw.power <= 1))
    with pytest.raises(ValueError, match="unknown alternative"):
        gof_proto.power_vs_length(gof.glm_at(), (1.0,), 2, np.random.default_rng(1), alternatives=["wrong"])


def test_gof_size_grid_equals_the_cells_one_by_one():
    from dataclasses import replace

    P = replace(gof_proto.preset("ci"), grid_biases=(-3.0,), grid_dts=(1e-3,), grid_reps=3, grid_T=1.0)
    grid = gof_proto.size_grid(P, np.random.default_rng(5), show_progress=False)
    r = np.random.default_rng(5).spawn(1)[0]
    assert grid == [gof_proto.size_cell(-3.0, 1e-3, 1.0, 3, r, q=P.q, alpha=P.alpha)]


def test_gof_size_cell_checks_every_test_with_its_pooled_values():
    cell = gof_proto.size_cell(gof.BIAS_66HZ, 1e-3, 5.0, 30, np.random.default_rng(2))
    assert set(cell.checks) == set(gof.TESTS)
    for t, c in cell.checks.items():
        assert c.n_runs == 30 and c.rejections == cell.rejections[t] and c.n_pooled > 0
    assert cell.checks["R"].n_pooled == cell.checks["R0"].n_pooled  # one value per spike
    assert cell.checks["R0"].pooled_p < 1e-6  # the naive test's bias shows in the pooled values
    assert cell.checks["R"].passes()


def test_gof_power_result_keeps_the_runs_for_paired_comparisons():
    pw = gof_proto.power_vs_length(gof.glm_at(), (2.0, 4.0), 12, np.random.default_rng(3),
                                   alternatives=["gain-x1.5", "no-relative-refractoriness"])
    assert pw.rejected.shape == (2, 2, 12, len(gof.TESTS))
    np.testing.assert_array_equal(pw.rejected.mean(axis=2), pw.power)
    runs = pw.runs("no-relative-refractoriness", 4.0, "R")
    assert runs.mean() == pw.at("no-relative-refractoriness", 4.0, "R")
    a, b = pw.runs("gain-x1.5", 4.0, "C"), pw.runs("gain-x1.5", 4.0, "T")
    assert pw.beats("gain-x1.5", 4.0, "C", "T") == gof.paired_pvalue(a, b)
    assert pw.rises("gain-x1.5", "C", 2.0, 4.0) == gof.paired_pvalue(
        pw.runs("gain-x1.5", 4.0, "C"), pw.runs("gain-x1.5", 2.0, "C"))


# ------------------------------------------------------------------------------------------------
# surprise-taxonomy
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", scales.SCALES)
def test_surprise_presets(scale):
    p = surprise_proto.preset(scale)
    assert isinstance(p, surprise_proto.Preset) and p.n_theta >= 3 and 0 <= p.p_c < 1


def test_surprise_long_runs_pool_and_sweep():
    from dataclasses import replace

    from lib import surprise as S

    P = replace(surprise_proto.preset("ci"), n_theta=101, t_long=60, n_seeds=2, t_sweep=50,
                tasks=((0.5, 0.1),))
    model = S.GridModel.build(P.sigma, P.n_theta, P.theta_max)
    runs = surprise_proto.long_runs(P, model, model.prior(), np.random.default_rng(0))
    pooled = surprise_proto.pool(runs)
    assert len(runs) == 2 and pooled.y.shape == (120,) and pooled.measures["Sh1"].shape == (120,)
    rows = surprise_proto.task_sweep(P, np.random.default_rng(1))
    assert [(r["sigma"], r["p_c"]) for r in rows] == [(0.5, 0.1)]
    with pytest.raises(ValueError, match="at least one run"):
        surprise_proto.pool([])


def test_surprise_sweep_grid_adapts_to_sigma_and_states_its_error():
    from dataclasses import replace

    P = surprise_proto.preset("paper")
    sharp, wide = surprise_proto.sweep_grid(P, 0.1, 5000), surprise_proto.sweep_grid(P, 5.0, 5000)
    assert sharp.dtheta < wide.dtheta / 10
    assert sharp.discretisation_error(5000) <= P.sweep_tol and wide.discretisation_error(5000) <= P.sweep_tol
    Q = replace(surprise_proto.preset("ci"), t_sweep=400, tasks=((0.1, 0.01), (1.0, 0.05)))
    rows = surprise_proto.task_sweep(Q, np.random.default_rng(2))
    assert rows[0]["grid points"] > rows[1]["grid points"]
    for r in rows:
        assert r["Sh1 error"] <= r["error bound"] <= Q.sweep_tol


def test_surprise_involves_change_is_the_predicted_distinguishable_set():
    from lib import surprise as S

    yes = {n for n in S.MEASURE_NAMES if surprise_proto.involves_change(n)}
    assert yes == {"BF", "Sh2", "SPE2", "Abs2", "Sq2", "Ba1", "Ba2", "Po1", "Po2", "CC2", "FE2"}
    with pytest.raises(ValueError, match="unknown measure"):
        surprise_proto.involves_change("Sh3")


# ------------------------------------------------------------------------------------------------
# A machine without the system dataset (issue: a fresh machine builds the whole book)
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def without_system_data(tmp_path, monkeypatch):
    """As on a machine with no Fashion-MNIST: the Debian copy hidden, empty data folders."""
    from lib import data

    monkeypatch.setenv("BOOK_SYSTEM_DATA", "0")
    monkeypatch.setenv("BOOK_OFFLINE", "1")
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path / "none"))
    monkeypatch.setattr(data, "CACHE", tmp_path / "cache")
    monkeypatch.delenv("BOOK_RESULTS_DIR", raising=False)


@pytest.mark.parametrize("scale", ["ci", "book"])
def test_every_image_chapter_loads_its_data_without_the_system_dataset(scale, without_system_data):
    from lib import data
    from lib.protocols import clapp as clapp_proto
    from lib.protocols import gateon as gateon_proto
    from lib.protocols import ttfs_deep_training as deep_proto

    P = clapp_proto.preset(scale)
    split = clapp_proto.load_split(P, seed=7919)
    assert split.description.startswith("fashion-mnist not available; measured on MNIST")
    counts = (len(split.probe_x), len(split.unlabeled), len(split.test_x))
    assert f"{counts[0]:,} probe-train / {counts[1]:,} unlabeled / {counts[2]:,} probe-test" in split.description
    assert counts[0] + counts[1] <= 4_000 and counts[2] <= 1_000

    G = gateon_proto.preset(scale)
    for n_tasks, n_train in ((None, None), (2, G.theory_n_train)):
        stream, sizes = gateon_proto.load_stream(G, seed=7919, n_tasks=n_tasks, n_train=n_train)
        assert sizes.description.startswith("fashion-mnist not available")
        assert (len(stream.x_train), len(stream.x_val), len(stream.x_test)) == tuple(sizes.used.values())
        assert f"{len(stream.x_train):,} train / {len(stream.x_val):,} val" in sizes.description

    names = set(ttfs_proto.preset(scale).fc_datasets) | {ttfs_proto.preset(scale).cnn_dataset,
                                                          deep_proto.preset(scale).dataset}
    for name in names:
        ds = data.load(name)
        assert ds.used in (name, "mnist-sample", "digits")
        assert ds.is_fallback == (ds.used != name) and (not ds.is_fallback or "not available" in ds.description)
