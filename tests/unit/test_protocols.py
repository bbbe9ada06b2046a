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
