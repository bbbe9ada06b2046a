"""Seed sweeps (``--seeds``) on the local executor and on a Dask cluster of 2 workers on loopback."""

import json
from pathlib import Path

import pytest
from test_cache import A, B, build, make_book, statuses

pytestmark = pytest.mark.slow


def seed_dependent(root: Path) -> None:
    """Chapter B records 7 + seed, with the criterion >= 7."""
    nb = root / "chapters" / B / "reproduce.md"
    nb.write_text(nb.read_text().replace("demo_b.value())", "demo_b.value() + seed)"))
    yml = root / "chapters" / B / "claims.yml"
    yml.write_text(yml.read_text().replace('{op: "==", value: 7}', '{op: ">=", value: 7}'))


def summary(root: Path) -> dict:
    return json.loads((root / "_build" / "ci" / "sweeps" / f"{B}.json").read_text())


def test_a_sweep_summarises_every_claim_over_seeds_and_rejudges_without_execution(tmp_path):
    make_book(tmp_path)
    seed_dependent(tmp_path)
    res = build(tmp_path, "--slug", B, "--seeds", "0-2")
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(statuses(res)) == 6 and f"{B}/reproduce@seed2" in statuses(res)
    entry = summary(tmp_path)["claims"][0]
    assert entry["values"] == [7, 8, 9] and entry["seeds"] == [0, 1, 2]
    assert entry["mean"] == 8 and entry["sd"] == 1 and entry["n_pass"] == 3

    yml = tmp_path / "chapters" / B / "claims.yml"
    yml.write_text(yml.read_text().replace('{op: ">=", value: 7}', '{op: "<=", value: 8}'))
    again = build(tmp_path, "--slug", B, "--seeds", "0-2")
    assert set(statuses(again).values()) == {"cached"}
    assert summary(tmp_path)["claims"][0]["n_pass"] == 2  # judged again, nothing executed
    assert again.returncode == 1 and "not reproduced" in again.stderr  # at ci a failing seed fails


def test_a_dask_cluster_of_two_workers_gives_the_local_executors_values(tmp_path):
    pytest.importorskip("dask.distributed")
    local, dask = tmp_path / "local", tmp_path / "dask"
    for root in (local, dask):
        root.mkdir()
        make_book(root)
        seed_dependent(root)
    assert build(local, "--seeds", "0-2").returncode == 0
    res = build(dask, "--seeds", "0-2", "--executor", "dask", "--jobs", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    assert summary(local)["claims"] == summary(dask)["claims"]
    for seed in (0, 1, 2):
        for slug in (A, B):
            m = f"_build/ci/seed-{seed}/chapters/{slug}/reproduce.measurements.json"
            assert json.loads((local / m).read_text()) == json.loads((dask / m).read_text())


@pytest.mark.parametrize("spec", ["9-3", "a-b", "-1", "1,1", ""])
def test_bad_seed_lists_are_clear_errors(tmp_path, spec):
    make_book(tmp_path)
    res = build(tmp_path, "--seeds", spec)
    assert res.returncode == 2 and "--seeds" in res.stderr and "Traceback" not in res.stderr


def test_seed_and_seeds_together_is_an_error(tmp_path):
    make_book(tmp_path)
    res = build(tmp_path, "--seed", "1", "--seeds", "0-2")
    assert res.returncode == 2 and "either --seed or --seeds" in res.stderr


def test_the_slurm_recipe_loads_and_renders_a_job_script():
    jobqueue = pytest.importorskip("dask_jobqueue")
    import dask
    import yaml

    from lib import ROOT

    config = yaml.safe_load((ROOT / "cluster" / "slurm.yaml").read_text())
    flat = {f"jobqueue.slurm.{k}": v for k, v in config["jobqueue"]["slurm"].items()}
    with dask.config.set(flat):  # key by key, over dask-jobqueue's defaults
        cluster = jobqueue.SLURMCluster()
        try:
            script = cluster.job_script()
        finally:
            cluster.close()
    assert "#SBATCH" in script and "--cpus-per-task=2" in script and "#SBATCH -t 04:00:00" in script
    assert "OMP_NUM_THREADS=1" in script and "distributed.cli.dask_worker" in script


def test_a_numeric_sweep_gets_its_figure_on_the_sweeps_page(tmp_path):
    """The sweeps page draws one figure per numeric claim (it failed with an ImportError once
    lib.build became a package, whenever a book was rendered after a sweep)."""
    from lib.build import report

    entry = {"id": "demo", "kind": "number", "values": [7.0, 8.0, None], "criterion": ">= 7"}
    png = tmp_path / "fig" / "demo.png"
    assert report.sweep_figure(entry, png) and png.stat().st_size > 1000
    assert not report.sweep_figure({**entry, "kind": "bool"}, tmp_path / "no.png")
