"""Every theory notebook runs in a live kernel, as a reader runs it in Jupyter (``make lab``).

The pipeline executes the notebooks with ``BOOK_STATIC=1`` (explorers drawn as static figures);
here ``BOOK_STATIC`` is unset, so each explorer builds its ``ipywidgets`` sliders and calls its
model, as in Jupyter. The seed is far from 0 (7919), so that no slider or stream assumes a small
seed. :mod:`lib.build.live` says why this is not papermill.
"""

import pytest

from lib import build
from lib.build.live import LiveKernelError, run_live

FAR_SEED = 7919


@pytest.mark.parametrize("slug", build.chapters())
def test_theory_notebook_and_its_explorer_run_in_a_live_kernel(slug):
    run = run_live(slug, "theory", "ci", FAR_SEED, cell_timeout=300)
    assert run.widgets >= 1, f"{slug}/theory showed no explorer widget in a live kernel"


def test_a_failing_cell_is_reported_with_its_error(tmp_path, monkeypatch):
    import lib.build.live as live

    monkeypatch.setattr(live, "_code_cells", lambda *a: ["x = 1", "raise KeyError('boom')"])
    with pytest.raises(LiveKernelError, match="code cell 1 raised KeyError"):
        run_live(build.chapters()[0], "theory", "ci", 0, cell_timeout=60)


def test_bad_arguments_are_refused():
    slug = build.chapters()[0]
    with pytest.raises(ValueError, match="unknown notebook"):
        run_live(slug, "index")
    with pytest.raises(ValueError, match="no notebook"):
        run_live("no-such-chapter")
    with pytest.raises(ValueError, match="scale"):
        run_live(slug, "theory", "huge")
    with pytest.raises(ValueError, match="cell_timeout"):
        run_live(slug, "theory", "ci", 0, cell_timeout=0)
