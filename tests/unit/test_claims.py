import json
import math
import textwrap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lib import claims

GOOD = textwrap.dedent(
    """
    chapter: demo
    paper: demo2020
    claims:
      - id: big
        statement: The value is large.
        where: Fig. 1
        paper_value: 0.9
        metric: a fraction
        criterion: {op: ">=", value: 0.5}
        scales: [ci, book]
      - id: exact
        statement: Two numbers agree.
        where: Eq. 3
        paper_value: "1e-10"
        metric: relative error
        criterion: {op: "<", value: 1.0e-10}
        scales: [ci]
      - id: range
        statement: In a band.
        where: Table 2
        paper_value: 0.05
        metric: size
        criterion: {op: between, low: 0.0, high: 0.11}
        scales: [book]
      - id: structural
        statement: No test is uniformly most powerful.
        where: Sec. 4
        paper_value: qualitative
        metric: ordering
        criterion: {op: "true"}
        scales: [ci, book, paper]
        explanation: The ordering depends on the misspecification.
    """
)


@pytest.fixture
def claims_file(tmp_path, monkeypatch):
    p = tmp_path / "claims.yml"
    p.write_text(GOOD)
    monkeypatch.setenv("BOOK_RESULTS_DIR", str(tmp_path / "out"))
    return p


def card(path, scale="ci"):
    return claims.Scorecard("demo", scale=scale, seed=3, data="synthetic", path=path)


def test_load_parses_every_field(claims_file):
    header, cs = claims.load(claims_file)
    assert header == {"chapter": "demo", "paper": "demo2020"}
    assert [c.id for c in cs] == ["big", "exact", "range", "structural"]
    assert cs[2].criterion.low == 0.0 and cs[2].criterion.high == 0.11
    assert cs[3].explanation.startswith("The ordering")
    assert str(cs[0].criterion) == ">= 0.5" and str(cs[2].criterion) == "in [0, 0.11]"


@pytest.mark.parametrize(
    "op, value, measured, ok",
    [(">=", 0.5, 0.5, True), (">=", 0.5, 0.49, False), (">", 0.5, 0.5, False), ("<", 1e-10, 1e-11, True),
     ("<", 1e-10, 1e-10, False), ("<=", 3, 3, True), ("==", 1.0, 1.0, True), ("==", 1.0, 0.999, False)],
)
def test_criteria(op, value, measured, ok):
    assert claims.Criterion(op, value=value).check(measured) is ok


def test_nan_never_passes():
    for op in (">=", "<", "<="):
        assert not claims.Criterion(op, value=0.0).check(float("nan"))
    assert not claims.Criterion("between", low=0, high=1).check(np.nan)


def test_true_criterion_needs_a_real_true():
    c = claims.Criterion("true")
    assert c.check(True) and c.check(np.bool_(True))
    assert not c.check(False) and not c.check(1) and not c.check("yes")


@given(st.floats(allow_nan=False), st.floats(allow_nan=False), st.floats(allow_nan=False))
def test_between_is_inclusive_interval(a, b, x):
    lo, hi = min(a, b), max(a, b)
    assert claims.Criterion("between", low=lo, high=hi).check(x) == (lo <= x <= hi)


def test_record_returns_verdict_and_writes_measurements_only(claims_file, tmp_path):
    c = card(claims_file)
    assert c.record("big", np.float64(0.74), detail="74 of 100") is True
    assert c.record("exact", 3e-9) is False
    c.record("structural", True)
    c.record("range", 0.2)  # a book claim measured at ci: not checked at this scale
    path = c.write()
    out = json.loads(path.read_text())
    assert path == tmp_path / "out" / "measurements.json"
    assert out["scale"] == "ci" and out["seed"] == 3 and out["chapter"] == "demo"
    ms = {m["id"]: m for m in out["measurements"]}
    assert ms["big"] == {"id": "big", "value": 0.74, "detail": "74 of 100", "data": "synthetic"}
    assert all("verdict" not in m for m in ms.values())  # verdicts are judged at the scorecard
    rows = {r["id"]: r for r in c.rows()}
    assert rows["big"]["verdict"] == claims.REPRODUCED and rows["big"]["value"] == 0.74
    assert rows["exact"]["verdict"] == claims.NOT_REPRODUCED
    assert rows["range"]["verdict"] == claims.NOT_CHECKED


def test_judge_uses_the_criteria_it_is_given(claims_file, tmp_path):
    c = card(claims_file)
    c.record("big", 0.6)
    c.write()
    ms = claims.read_measurements(tmp_path / "out" / "measurements.json")
    _, cs = claims.load(claims_file)
    assert claims.judge(cs, ms, "ci", "demo")[0]["verdict"] == claims.REPRODUCED
    claims_file.write_text(GOOD.replace('{op: ">=", value: 0.5}', '{op: ">=", value: 0.7}'))
    _, stricter = claims.load(claims_file)
    rows = claims.judge(stricter, ms, "ci", "demo", missing_reason="the notebook failed at cell 3")
    assert rows[0]["verdict"] == claims.NOT_REPRODUCED and rows[0]["criterion"] == ">= 0.7"
    assert rows[1]["verdict"] == claims.NOT_MEASURED and rows[1]["detail"] == "the notebook failed at cell 3"


def test_a_truncated_measurements_file_is_a_clear_error(tmp_path):
    p = tmp_path / "measurements.json"
    p.write_text('{"chapter": "demo", "measu')
    with pytest.raises(claims.ClaimsFileError, match="not a measurements file"):
        claims.read_measurements(p)


def test_record_refuses_values_that_are_not_plain(claims_file):
    with pytest.raises(TypeError, match="expected a number, bool or string"):
        card(claims_file).record("big", [0.5, 0.6])


def test_a_non_numeric_value_for_a_numeric_criterion_is_not_reproduced(claims_file):
    c = card(claims_file)
    c.record("big", "lots")
    row = c.rows()[0]
    assert row["verdict"] == claims.NOT_REPRODUCED and "needs a number" in row["detail"]


def test_report_raises_at_ci_on_failed_or_missing_claims(claims_file):
    c = card(claims_file)
    c.record("big", 0.1)
    with pytest.raises(claims.ClaimFailure) as e:
        c.report()
    assert "big: not reproduced" in str(e.value) and "exact: not measured" in str(e.value)


def test_report_passes_at_ci_when_every_ci_claim_holds(claims_file, capsys):
    c = card(claims_file)
    c.record("big", 0.9)
    c.record("exact", 0.0)
    c.record("structural", True)
    c.report()
    out = capsys.readouterr().out
    assert "big" in out and "0.9" in out and "range" in out and "not recorded" in out
    assert "reproduced" not in out  # the notebook prints measurements; the book judges them


def test_report_does_not_raise_at_book(claims_file):
    c = card(claims_file, scale="book")
    c.record("big", 0.1)
    c.report()  # failures are shown, not raised
    assert {r["id"] for r in c.failures()} == {"big", "range", "structural"}


def test_unknown_claim_id_lists_the_valid_ids(claims_file):
    with pytest.raises(KeyError, match="expected one of big, exact, range, structural"):
        card(claims_file).record("nope", 1)


def test_unknown_scale_is_a_value_error(claims_file):
    with pytest.raises(ValueError, match="expected one of ci, book, paper"):
        card(claims_file, scale="huge")


def test_html_table_escapes_and_shows_explanation_on_failure(claims_file):
    c = card(claims_file, scale="book")
    c.record("structural", False, detail="<b>R</b> best everywhere")
    html = c.to_html()
    assert "&lt;b&gt;R&lt;/b&gt;" in html and "depends on the misspecification" in html


@pytest.mark.parametrize(
    "mutation, message",
    [
        (lambda t: t.replace("criterion: {op: \">=\", value: 0.5}", "criterion: {op: \"~\", value: 0.5}"), "unknown criterion op"),
        (lambda t: t.replace("scales: [ci, book]\n", "scales: [nightly]\n", 1), "scales must be"),
        (lambda t: t.replace("id: exact", "id: big"), "unique"),
        (lambda t: t.replace("    where: Fig. 1\n", ""), "missing keys \\['where'\\]"),
        (lambda t: t.replace("{op: between, low: 0.0, high: 0.11}", "{op: between, low: 1.0, high: 0.11}"), "low <= high"),
        (lambda t: t.replace("{op: \"<\", value: 1.0e-10}", "{op: \"<\"}"), "needs a 'value'"),
        (lambda t: t.replace("paper: demo2020\n", ""), "paper"),
        (lambda t: t + "  - [not, a, mapping]\n", "expected a mapping"),
        (lambda t: "claims: [\n", "not valid YAML"),
    ],
)
def test_malformed_claims_files_are_clear_errors(tmp_path, mutation, message):
    p = tmp_path / "claims.yml"
    p.write_text(mutation(GOOD))
    with pytest.raises(claims.ClaimsFileError, match=message):
        claims.load(p)


def test_every_chapter_claims_file_is_valid():
    from lib import ROOT

    files = sorted((ROOT / "chapters").glob("*/claims.yml"))
    assert files, "no chapter has a claims.yml"
    for f in files:
        header, cs = claims.load(f)
        assert header["chapter"] == f.parent.name
        assert any("ci" in c.scales for c in cs), f"{f}: no claim is checked at ci"
        assert all(not (isinstance(c.criterion.value, float) and math.isnan(c.criterion.value)) for c in cs)


CONTROLLED = textwrap.dedent(
    """
    chapter: demo
    paper: demo2020
    claims:
      - id: trained
        statement: Training helps.
        where: Fig. 2
        paper_value: 0.9
        metric: accuracy
        criterion: {op: ">=", value: 0.8}
        scales: [ci, book]
        control: the untrained network
      - id: identity
        statement: Two numbers agree.
        where: Eq. 3
        paper_value: "1e-10"
        metric: relative error
        criterion: {op: "<", value: 1.0e-10}
        scales: [ci]
        no_control: an identity; its control is a perturbed input, tested in the unit tests
      - id: often
        statement: Most runs succeed.
        where: Fig. 3
        paper_value: "most"
        metric: fraction of runs that succeed
        criterion: {op: ">=", value: 0.5, confidence: 0.95}
        scales: [ci]
        control: shuffled labels
    """
)


@pytest.fixture
def controlled(tmp_path, monkeypatch):
    p = tmp_path / "claims.yml"
    p.write_text(CONTROLLED)
    monkeypatch.setenv("BOOK_RESULTS_DIR", str(tmp_path / "out"))
    return p


def test_a_control_that_meets_the_criterion_makes_the_claim_undecided(controlled):
    c = card(controlled)
    assert c.record("trained", 0.9, control=0.5)
    assert not c.record("trained", 0.9, control=0.85)
    row = {r["id"]: r for r in c.rows()}["trained"]
    assert row["verdict"] == claims.CANNOT_TELL and row["control_value"] == 0.85
    assert "untrained" in row["detail"]
    assert [r["id"] for r in c.failures()] == ["trained", "identity", "often"]  # unrecorded
    html_ = claims.table_html(c.rows())
    assert "criterion cannot tell" in html_ and "control (the untrained network): 0.85" in html_


def test_a_claim_with_a_control_needs_its_value(controlled):
    c = card(controlled)
    c.record("trained", 0.9)
    row = {r["id"]: r for r in c.rows()}["trained"]
    assert row["verdict"] == claims.NOT_MEASURED and "control" in row["detail"]
    with pytest.raises(ValueError, match="names no control"):
        c.record("identity", 1e-12, control=1.0)


def test_controls_and_counts_survive_the_json_round_trip(controlled):
    c = card(controlled)
    c.record("trained", 0.9, control=0.2, control_detail="weights at init")
    c.record_count("often", 17, 20, control=(3, 20))
    ms = claims.read_measurements(c.write())
    rows = {r["id"]: r for r in claims.judge(list(c.claims.values()), ms, "ci", "demo")}
    assert rows["trained"]["control_detail"] == "weights at init"
    assert rows["often"]["verdict"] == claims.REPRODUCED and rows["often"]["value"] == 0.85
    lo, hi = rows["often"]["interval"]
    assert 0.62 < lo < 0.63 and 0.96 < hi < 0.97  # Clopper-Pearson 95 % of 17/20


def test_a_count_is_judged_on_its_whole_interval(controlled):
    c = card(controlled)
    # 6 of 8 is 0.75 >= 0.5, but its 95 % interval reaches down to 0.35: undecided, so not passed
    assert not c.record_count("often", 6, 8, control=(0, 8))
    assert c.record_count("often", 60, 80, control=(0, 8))
    with pytest.raises(ValueError, match="record_count"):
        c.record("often", 0.75, control=0.0)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        c.record_count("often", 9, 8)
    with pytest.raises(ValueError, match="two whole numbers"):
        c.record_count("often", 2.5, 8)
    assert claims.binomial_interval(0, 10)[0] == 0.0 and claims.binomial_interval(10, 10)[1] == 1.0


def test_a_control_of_a_count_is_judged_on_its_fraction(controlled):
    c = card(controlled)
    # the control's interval would not pass, but its fraction (0.55) meets >= 0.5: cannot tell
    assert not c.record_count("often", 80, 80, control=(11, 20))
    assert {r["id"]: r for r in c.rows()}["often"]["verdict"] == claims.CANNOT_TELL


@pytest.mark.parametrize("extra, match", [
    ("    control: ''\n", "non-empty string"),
    ("    control: x\n    no_control: y\n", "not both"),
])
def test_control_keys_are_checked(tmp_path, extra, match):
    p = tmp_path / "claims.yml"
    p.write_text(textwrap.dedent(
        """
        chapter: demo
        paper: demo2020
        claims:
          - id: a
            statement: s
            where: w
            paper_value: 1
            metric: m
            criterion: {op: ">", value: 0}
            scales: [ci]
        """) + extra)
    with pytest.raises(claims.ClaimsFileError, match=match):
        claims.load(p)


def test_a_confidence_needs_a_numeric_criterion(tmp_path):
    with pytest.raises(claims.ClaimsFileError, match="confidence"):
        claims.Criterion.parse({"op": "true", "confidence": 0.95}, "here")
    with pytest.raises(claims.ClaimsFileError, match="confidence"):
        claims.Criterion.parse({"op": ">", "value": 0.5, "confidence": 1.5}, "here")
    assert "95% interval" in str(claims.Criterion.parse({"op": ">", "value": 0.5, "confidence": 0.95}, "h"))
