"""The book's style and the interactive explorer."""

import pytest

from lib import plotting


def test_static_explorer_draws_the_default_once(monkeypatch):
    monkeypatch.setenv("BOOK_STATIC", "1")
    calls = []
    assert plotting.explore(lambda a, n: calls.append((a, n)), a=(0.0, 2.0, 0.5), n=(1, 10, 3)) is None
    assert calls == [(0.5, 3)]


def test_interactive_explorer_has_one_slider_per_parameter(monkeypatch):
    pytest.importorskip("ipywidgets")
    monkeypatch.setenv("BOOK_STATIC", "0")
    calls = []
    ui = plotting.explore(lambda a, n: calls.append((a, n)), a=(0.0, 2.0, 0.1, 0.5), n=(1, 10, 3))
    kinds = {c.description: type(c).__name__ for c in ui.children if hasattr(c, "description")}
    assert kinds["a"] == "FloatSlider" and kinds["n"] == "IntSlider"
    assert calls and calls[0] == (0.5, 3)  # drawn at the defaults first
    ui.children[0].value = 1.5
    assert calls[-1] == (1.5, 3)


@pytest.mark.parametrize(
    "sliders, message",
    [({}, "at least one slider"), ({"a": (0, 1)}, "expected \\(low, high, default\\)"),
     ({"a": (0.0, 1.0, 2.0)}, "outside \\[0.0, 1.0\\]")],
)
def test_bad_sliders_are_clear_errors(monkeypatch, sliders, message):
    monkeypatch.setenv("BOOK_STATIC", "1")
    with pytest.raises(ValueError, match=message):
        plotting.explore(lambda **k: None, **sliders)


def test_palette_cycles():
    assert plotting.color(0) == plotting.color(len(plotting.PALETTE))


def test_the_explorer_takes_a_partial_or_any_callable_in_a_live_kernel(monkeypatch):
    import functools

    pytest.importorskip("ipywidgets")
    monkeypatch.setenv("BOOK_STATIC", "0")
    calls = []

    def draw(a, n, colour):
        calls.append((a, n, colour))

    ui = plotting.explore(functools.partial(draw, colour="red"), a=(0.0, 2.0, 0.5), n=(1, 10, 3))
    sliders = [c.description for c in ui.children if hasattr(c, "min")]
    assert sliders == ["a", "n"]  # no widget for the partial's bound keyword
    assert calls[0] == (0.5, 3, "red")

    class Draw:
        def __call__(self, a):
            calls.append(a)

    plotting.explore(Draw(), a=(0, 5, 2))
    assert calls[-1] == 2


@pytest.mark.parametrize("static", ["0", "1"])
def test_an_integer_default_outside_the_range_widens_it(monkeypatch, static):
    if static == "0":
        pytest.importorskip("ipywidgets")
    monkeypatch.setenv("BOOK_STATIC", static)
    seen = []
    ui = plotting.explore(lambda seed: seen.append(seed), seed=(0, 9, 7919))
    assert seen == [7919]
    if ui is not None:
        (slider,) = [c for c in ui.children if hasattr(c, "min")]
        assert (slider.min, slider.max, slider.value) == (0, 7919, 7919)
