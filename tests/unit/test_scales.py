import pytest

from lib import scales


def test_scales_are_the_three_of_the_design():
    assert scales.SCALES == ("ci", "book", "paper")
    assert scales.DEFAULT_SCALE == "book"


@pytest.mark.parametrize("s", scales.SCALES)
def test_pick_returns_the_preset_of_the_scale(s):
    presets = {"ci": 1, "book": 2, "paper": 3}
    assert scales.pick(presets, s) == presets[s]


@pytest.mark.parametrize("bad", ["CI", "full", "", None, 3])
def test_unknown_scale_lists_the_valid_ones(bad):
    with pytest.raises(ValueError, match="expected one of ci, book, paper"):
        scales.check(bad)


def test_presets_missing_a_scale_are_an_error():
    with pytest.raises(ValueError, match="lack the scale"):
        scales.pick({"ci": 1, "book": 2}, "ci")
