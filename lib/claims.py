"""Claims and the scorecard: the contract between a chapter and its paper.

Each chapter lists the paper's headline claims in ``chapters/<slug>/claims.yml`` (schema in
CONTRIBUTING.md). Its ``reproduce.md`` notebook *measures* each one and records the
measurement::

    card = claims.Scorecard("gof-point-processes", scale=scale, seed=seed)
    card.record("naive-overrejects", 0.74, detail="74 of 100 runs")
    card.report()   # prints the measurements, writes measurements.json; at ci raises if a
                    # ci claim fails its criterion

A claim may name a **control** (``control:`` in ``claims.yml``): a broken or trivial method
(an untrained network, the initialisation alone, a term removed, a gradient sign-flipped) that
the notebook measures with the same metric and records beside the value
(``card.record(id, value, control=c)``). A claim whose control also meets the criterion is judged
:data:`CANNOT_TELL` -- the criterion cannot tell the method from its control -- and counts as a
failure at ``ci``. A claim without a control says why in ``no_control:``.

A claim on a fraction of runs states a ``confidence`` in its criterion and is recorded with
:meth:`Scorecard.record_count` (successes and runs): it passes only where the whole
Clopper-Pearson interval at that confidence meets the criterion, and the scorecard prints it.

A notebook writes measurements (id, value, detail, data), never verdicts. The verdict comes
from the criterion in ``claims.yml`` *as it is when the book is built*: :func:`judge` joins the
measurements with the current ``claims.yml``, so that editing a criterion or a statement
re-renders the scorecard without re-executing anything. ``lib.build`` judges every chapter and
the ``{claims-table}`` directive (``_ext/claims_table.py``) renders the tables.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import asdict, dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import yaml

from . import ROOT, scales

#: Comparison operators a criterion may use.
OPS: tuple[str, ...] = ("<", "<=", ">", ">=", "==", "between", "true")

#: The verdicts that appear in the scorecard.
REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_CHECKED = "not checked at this scale"
NOT_MEASURED = "not measured"
CANNOT_TELL = "criterion cannot tell"

_REQUIRED = ("id", "statement", "where", "paper_value", "metric", "criterion", "scales")
_OPTIONAL = ("explanation", "control", "no_control")


class ClaimsFileError(ValueError):
    """A ``claims.yml`` that does not follow the schema."""


class ClaimFailure(AssertionError):
    """Raised at ``ci`` scale when a claim marked for ``ci`` failed or was not measured."""


@dataclass(frozen=True)
class Criterion:
    """A pass criterion: ``value <op> threshold`` (or ``low <= value <= high`` for ``between``)."""

    op: str
    value: Any = None
    low: float | None = None
    high: float | None = None
    confidence: float | None = None

    @classmethod
    def parse(cls, raw: Any, where: str) -> "Criterion":
        if not isinstance(raw, dict) or "op" not in raw:
            raise ClaimsFileError(f"{where}: criterion must be a mapping with an 'op' key, got {raw!r}")
        op = raw["op"]
        if op not in OPS:
            raise ClaimsFileError(f"{where}: unknown criterion op {op!r}; expected one of {', '.join(OPS)}")
        extra = set(raw) - {"op", "value", "low", "high", "confidence"}
        if extra:
            raise ClaimsFileError(f"{where}: unexpected criterion keys {sorted(extra)}")
        conf = raw.get("confidence")
        if conf is not None:
            if not (isinstance(conf, Real) and 0.5 <= conf < 1):
                raise ClaimsFileError(f"{where}: confidence must be a number in [0.5, 1), got {conf!r}")
            if op in ("true", "=="):
                raise ClaimsFileError(f"{where}: confidence needs a numeric op (<, <=, >, >=, between)")
            conf = float(conf)
        if op == "between":
            low, high = raw.get("low"), raw.get("high")
            if not (isinstance(low, Real) and isinstance(high, Real)) or low > high:
                raise ClaimsFileError(f"{where}: 'between' needs numbers low <= high, got low={low!r}, high={high!r}")
            return cls(op, low=float(low), high=float(high), confidence=conf)
        if op == "true":
            return cls(op)
        if "value" not in raw:
            raise ClaimsFileError(f"{where}: op {op!r} needs a 'value'")
        value = raw["value"]
        if op != "==" and not isinstance(value, Real):
            raise ClaimsFileError(f"{where}: op {op!r} needs a numeric 'value', got {value!r}")
        return cls(op, value=value, confidence=conf)

    def check_count(self, k: int, n: int) -> bool:
        """Whether ``k`` successes of ``n`` runs meet the criterion at its ``confidence``.

        The whole two-sided Clopper-Pearson interval must satisfy it: its lower end for ``>``
        and ``>=``, its upper end for ``<`` and ``<=``, both ends for ``between``. Without a
        ``confidence`` the fraction ``k / n`` itself is judged.
        """
        if self.confidence is None:
            return self.check(k / n)
        lo, hi = binomial_interval(k, n, self.confidence)
        if self.op == "between":
            return self.low <= lo and hi <= self.high
        return self.check(lo if self.op in (">", ">=") else hi)

    def check(self, measured: Any) -> bool:
        """Whether ``measured`` satisfies the criterion (NaN never does)."""
        if self.op == "true":
            return measured is True or (hasattr(measured, "dtype") and measured.dtype == bool and bool(measured))
        if self.op == "==":
            return bool(measured == self.value)
        try:
            x = float(measured)
        except (TypeError, ValueError) as err:
            raise TypeError(f"criterion {self} needs a number, got {measured!r}") from err
        if math.isnan(x):
            return False
        if self.op == "between":
            return self.low <= x <= self.high
        t = float(self.value)
        return {"<": x < t, "<=": x <= t, ">": x > t, ">=": x >= t}[self.op]

    def __str__(self) -> str:
        if self.op == "between":
            out = f"in [{_fmt(self.low)}, {_fmt(self.high)}]"
        elif self.op == "true":
            return "holds"
        else:
            out = f"{self.op} {_fmt(self.value)}"
        if self.confidence is not None:
            out += f" (whole {self.confidence:.0%} interval)"
        return out


def binomial_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The two-sided Clopper-Pearson (exact) interval of a proportion, ``k`` successes in ``n``.

    Raises:
        ValueError: unless ``0 <= k <= n`` are integers with ``n >= 1`` and ``confidence`` in (0, 1).
    """
    from scipy.stats import binomtest

    if not (isinstance(k, (int,)) and isinstance(n, int)) or n < 1 or not 0 <= k <= n:
        raise ValueError(f"a count needs integers 0 <= k <= n with n >= 1, got k={k!r}, n={n!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, as written in ``claims.yml``."""

    id: str
    statement: str
    where: str
    paper_value: Any
    metric: str
    criterion: Criterion
    scales: tuple[str, ...]
    explanation: str = ""
    control: str = ""
    no_control: str = ""


@dataclass
class Result:
    """A judged claim: the measured value, the verdict and where the number came from."""

    id: str
    value: Any = None
    verdict: str = NOT_MEASURED
    detail: str = ""
    data: str = ""


@dataclass(frozen=True)
class Measurement:
    """What a notebook measured for one claim (no verdict: that is judged at the scorecard).

    Attributes:
        id: the claim's id in ``claims.yml``.
        value: the measured value (a plain number, bool or string).
        detail: a short note shown beside the value (counts, the evidence behind a boolean).
        data: the data the value came from, as actually used.
        control: the same metric measured on the claim's control (``None``: not measured).
        control_detail: a short note on the control's value.
        count: ``(k, n)`` where the value is the fraction ``k / n`` of ``n`` runs.
        control_count: the control's ``(k, n)``, likewise.
    """

    id: str
    value: Any
    detail: str = ""
    data: str = ""
    control: Any = None
    control_detail: str = ""
    count: tuple[int, int] | None = None
    control_count: tuple[int, int] | None = None


#: Name of the file a notebook writes its measurements to (in :func:`results_dir`).
MEASUREMENTS_FILE = "measurements.json"


def chapter_dir(slug: str) -> Path:
    """The folder of chapter ``slug``; a ``ValueError`` lists the chapters if there is none."""
    d = ROOT / "chapters" / slug
    if not (d / "claims.yml").is_file():
        known = sorted(p.parent.name for p in (ROOT / "chapters").glob("*/claims.yml"))
        raise ValueError(f"unknown chapter {slug!r}; expected one of {', '.join(known)}")
    return d


def load(path: str | Path) -> tuple[dict, list[Claim]]:
    """Read and validate a ``claims.yml``.

    Args:
        path: the file.

    Returns:
        ``(header, claims)``: the top-level keys other than ``claims``, and the list of claims.

    Raises:
        ClaimsFileError: if the file is not valid YAML or does not follow the schema.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ClaimsFileError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict) or not isinstance(raw.get("claims"), list) or not raw["claims"]:
        raise ClaimsFileError(f"{path}: expected a mapping with a non-empty list under 'claims'")
    for key in ("chapter", "paper"):
        if not isinstance(raw.get(key), str):
            raise ClaimsFileError(f"{path}: missing top-level string {key!r}")
    out: list[Claim] = []
    seen: set[str] = set()
    for i, c in enumerate(raw["claims"]):
        where = f"{path} claim #{i + 1}"
        if not isinstance(c, dict):
            raise ClaimsFileError(f"{where}: expected a mapping, got {c!r}")
        missing = [k for k in _REQUIRED if k not in c]
        if missing:
            raise ClaimsFileError(f"{where} ({c.get('id', '?')}): missing keys {missing}")
        extra = set(c) - set(_REQUIRED) - set(_OPTIONAL)
        if extra:
            raise ClaimsFileError(f"{where} ({c['id']}): unexpected keys {sorted(extra)}")
        cid = c["id"]
        if not isinstance(cid, str) or not cid or cid in seen:
            raise ClaimsFileError(f"{where}: id must be a unique non-empty string, got {cid!r}")
        seen.add(cid)
        for key in ("control", "no_control"):
            if key in c and not (isinstance(c[key], str) and c[key].strip()):
                raise ClaimsFileError(f"{where} ({cid}): {key} must be a non-empty string, got {c[key]!r}")
        if "control" in c and "no_control" in c:
            raise ClaimsFileError(f"{where} ({cid}): give either a control or a reason for none "
                                  "(no_control), not both")
        sc = c["scales"]
        if not isinstance(sc, list) or not sc or any(s not in scales.SCALES for s in sc):
            raise ClaimsFileError(f"{where} ({cid}): scales must be a non-empty list from {scales.SCALES}, got {sc!r}")
        out.append(
            Claim(
                id=cid,
                statement=str(c["statement"]).strip(),
                where=str(c["where"]),
                paper_value=c["paper_value"],
                metric=str(c["metric"]).strip(),
                criterion=Criterion.parse(c["criterion"], f"{where} ({cid})"),
                scales=tuple(sc),
                explanation=str(c.get("explanation", "") or "").strip(),
                control=str(c.get("control", "")).strip(),
                no_control=str(c.get("no_control", "")).strip(),
            )
        )
    header = {k: v for k, v in raw.items() if k != "claims"}
    return header, out


def results_dir(slug: str, scale: str) -> Path:
    """Where a chapter's results are written: ``$BOOK_RESULTS_DIR`` or ``_build/<scale>/chapters/<slug>``."""
    env = os.environ.get("BOOK_RESULTS_DIR")
    return Path(env) if env else ROOT / "_build" / scale / "chapters" / slug


class Scorecard:
    """The claims of one chapter, measured at one scale.

    Args:
        slug: the chapter's folder name under ``chapters/``.
        scale: ``"ci"``, ``"book"`` or ``"paper"``.
        seed: the notebook's seed (recorded with the measurements).
        data: default description of the data the numbers come from.
        path: a ``claims.yml`` to read instead of the chapter's (for tests).
    """

    def __init__(self, slug: str, scale: str, seed: int = 0, data: str = "",
                 path: str | Path | None = None):
        self.scale = scales.check(scale)
        self.slug = slug
        self.seed = seed
        self.data = data
        self.path = Path(path) if path is not None else chapter_dir(slug) / "claims.yml"
        self.header, claims = load(self.path)
        if self.header["chapter"] != slug:
            raise ClaimsFileError(f"{self.path}: chapter is {self.header['chapter']!r}, expected {slug!r}")
        self.claims: dict[str, Claim] = {c.id: c for c in claims}
        self.measurements: dict[str, Measurement] = {}

    def record(self, claim_id: str, value: Any, detail: str = "", data: str | None = None, *,
               control: Any = None, control_detail: str = "") -> bool:
        """Record the measured value of a claim and return whether it meets its criterion now.

        The returned bool is for the reader in Jupyter; the book judges the stored measurement
        again, against ``claims.yml`` as it is at build time.

        Args:
            claim_id: an id from ``claims.yml``.
            value: the measured value (a number, or a bool for ``op: true``); numpy scalars are fine.
            detail: a short note shown in the table (the evidence behind a boolean, counts, ...).
            data: the data the value came from; defaults to the Scorecard's ``data``.
            control: the same metric measured on the claim's control (the broken or trivial
                method its ``control:`` in ``claims.yml`` names).
            control_detail: a short note on the control's value.

        Returns:
            True if the criterion holds and its control (if any) does not meet it.

        Raises:
            KeyError: if ``claim_id`` is not in ``claims.yml``.
            TypeError: if the value is not a plain number, bool or string.
            ValueError: if a control is given for a claim that names none, or a count claim
                (one whose criterion has a ``confidence``) is recorded without its count.
        """
        return self._store(claim_id, value, detail, data, control, control_detail, None, None)

    def record_count(self, claim_id: str, k: int, n: int, detail: str = "", data: str | None = None, *,
                     control: tuple[int, int] | None = None, control_detail: str = "") -> bool:
        """Record a claim that is a fraction of runs: ``k`` of ``n`` runs succeeded.

        Where the claim's criterion names a ``confidence``, the whole Clopper-Pearson interval
        must meet it (:meth:`Criterion.check_count`); the table prints the interval.

        Args:
            claim_id, detail, data, control_detail: as for :meth:`record`.
            k, n: successes and runs.
            control: the control's ``(k, n)``.
        """
        k, n = _count((k, n), claim_id)
        cc = None if control is None else _count(control, f"{claim_id} (control)")
        return self._store(claim_id, k / n, detail, data, None if cc is None else cc[0] / cc[1],
                           control_detail, (k, n), cc)

    def _store(self, claim_id, value, detail, data, control, control_detail, count, control_count) -> bool:
        if claim_id not in self.claims:
            raise KeyError(f"claim {claim_id!r} is not in {self.path}; expected one of {', '.join(self.claims)}")
        claim = self.claims[claim_id]
        value, control = _plain(value), _plain(control)
        for what, v in (("value", value), ("control", control)):
            if v is not None and not isinstance(v, (bool, int, float, str)):
                raise TypeError(f"claim {claim_id!r}: expected a number, bool or string as {what}, "
                                f"got {type(v).__name__}")
        if control is not None and not claim.control:
            raise ValueError(f"claim {claim_id!r} names no control in {self.path}; add `control:` there "
                             "(what broken method the control value comes from) before recording one")
        if claim.criterion.confidence is not None and count is None:
            raise ValueError(f"claim {claim_id!r} is judged at {claim.criterion.confidence:.0%} confidence: "
                             "record it with record_count(id, k, n)")
        m = Measurement(claim_id, value, str(detail), self.data if data is None else str(data),
                        control, str(control_detail), count, control_count)
        self.measurements[claim_id] = m
        return _judge_one(claim, m, self.scale)[0] == REPRODUCED

    def rows(self) -> list[dict]:
        """One dict per claim, judged now: the claim's fields, the measured value and the verdict."""
        return judge(list(self.claims.values()), list(self.measurements.values()), self.scale, self.slug)

    def failures(self) -> list[dict]:
        """Rows of claims checked at this scale that were not reproduced, not measured, or whose
        control meets the criterion too."""
        return [r for r in self.rows() if self.scale in r["scales"] and r["verdict"] in FAILING]

    def write(self) -> Path:
        """Write the measurements as ``measurements.json`` to :func:`results_dir`; return its path."""
        d = results_dir(self.slug, self.scale)
        d.mkdir(parents=True, exist_ok=True)
        path = d / MEASUREMENTS_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(measurements_payload(self.slug, self.scale, self.seed,
                                                       self.measurements.values()), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    def to_html(self) -> str:
        """The chapter's claims table, judged now, as HTML (for a reader in Jupyter)."""
        return table_html(self.rows(), with_chapter=False)

    def table(self) -> None:
        """Display the claims table judged now (in Jupyter; the book renders its own)."""
        from IPython.display import HTML, display

        display(HTML(self.to_html()))

    def report(self, raise_on_failure: bool | None = None) -> None:
        """Write ``measurements.json``, print the measurements, and at ``ci`` raise on failed ci claims.

        Only measurements are printed: the verdicts in the book come from the build, which
        judges them against the current ``claims.yml`` (the table after this cell).

        Args:
            raise_on_failure: override: raise (True) or never raise (False); default raises at
                ``ci`` only.

        Raises:
            ClaimFailure: at ``ci``, if a claim marked for ``ci`` failed or was not recorded.
        """
        self.write()
        for c in self.claims.values():
            m = self.measurements.get(c.id)
            shown = "not recorded" if m is None else f"{_fmt(m.value)}" + (f"  ({m.detail})" if m.detail else "")
            if m is not None and m.control is not None:
                shown += f"  [control: {_fmt(m.control)}]"
            print(f"{c.id:<34} {shown}")
        fails = self.failures()
        if raise_on_failure is None:
            raise_on_failure = self.scale == "ci"
        if fails and raise_on_failure:
            lines = [f"  {r['id']}: {r['verdict']}, ours = {_fmt(r['value'])}, criterion {r['criterion']}"
                     for r in fails]
            raise ClaimFailure(f"{len(fails)} claim(s) of {self.slug} failed at scale {self.scale}:\n"
                               + "\n".join(lines))


def measurements_payload(slug: str, scale: str, seed: int, measurements) -> dict:
    """The JSON document of a chapter's measurements."""
    return {
        "chapter": slug,
        "scale": scale,
        "seed": seed,
        "measurements": [_compact(asdict(m)) for m in measurements],
    }


_OPTIONAL_FIELDS = ("control", "control_detail", "count", "control_count")


def _compact(m: dict) -> dict:
    """A measurement's dict without its empty optional fields (a claim without a control
    writes exactly what it wrote before controls existed)."""
    return {k: v for k, v in m.items() if k not in _OPTIONAL_FIELDS or v not in (None, "")}


def read_measurements(path: str | Path) -> list[Measurement]:
    """Read a ``measurements.json``.

    Raises:
        ClaimsFileError: if the file is not valid JSON or not a measurements document.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        return [Measurement(str(m["id"]), m.get("value"), str(m.get("detail", "")), str(m.get("data", "")),
                            m.get("control"), str(m.get("control_detail", "")),
                            _pair(m.get("count")), _pair(m.get("control_count")))
                for m in raw["measurements"]]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ClaimsFileError(f"{path}: not a measurements file ({type(err).__name__}: {err})") from err


def _meets(claim: Claim, value: Any, count: tuple[int, int] | None, interval: bool) -> bool:
    """Whether one value meets a claim's criterion (a count through its interval if ``interval``)."""
    if count is not None and interval:
        return claim.criterion.check_count(*count)
    return claim.criterion.check(value)


def _judge_one(claim: Claim, m: Measurement | None, scale: str) -> tuple[str, str]:
    """``(verdict, note)`` of one claim at ``scale`` given its measurement (or ``None``).

    A control is judged on its point value (for a count: the fraction itself, not an interval),
    the stricter test for "the control fails".
    """
    if scale not in claim.scales:
        return NOT_CHECKED, ""
    if m is None:
        return NOT_MEASURED, ""
    if claim.criterion.confidence is not None and m.count is None:
        return NOT_MEASURED, f"judged at {claim.criterion.confidence:.0%} confidence, but recorded without its count"
    try:
        ok = _meets(claim, m.value, m.count, interval=True)
        if claim.control and m.control is None:
            return NOT_MEASURED, f"its control ({claim.control}) was not measured"
        if claim.control and _meets(claim, m.control, m.control_count, interval=False):
            return CANNOT_TELL, f"its control ({claim.control}) meets the criterion too"
    except TypeError as err:
        return NOT_REPRODUCED, str(err)
    return (REPRODUCED if ok else NOT_REPRODUCED), ""


def judge(claims: list[Claim], measurements: list[Measurement], scale: str, slug: str,
          missing_reason: str = "") -> list[dict]:
    """Judge measurements against claims: one row per claim, in the order of ``claims.yml``.

    Args:
        claims: the chapter's claims (from :func:`load`).
        measurements: what its notebooks measured (later ones win for a repeated id).
        scale: the scale the measurements were made at.
        slug: the chapter (copied into each row).
        missing_reason: shown as the detail of a claim that has no measurement
            (for example ``"the notebook failed at cell 12"``).

    Returns:
        Rows with the claim's fields, ``value``, ``verdict``, ``detail`` and ``data``.
    """
    by_id = {m.id: m for m in measurements}
    out = []
    for c in claims:
        m = by_id.get(c.id)
        verdict, note = _judge_one(c, m, scale)
        detail = (m.detail if m else "") or ""
        if note:
            detail = f"{detail}; {note}" if detail else note
        if m is None and missing_reason and verdict == NOT_MEASURED:
            detail = missing_reason
        out.append({
            "chapter": slug,
            "id": c.id,
            "statement": c.statement,
            "where": c.where,
            "paper_value": c.paper_value,
            "metric": c.metric,
            "criterion": str(c.criterion),
            "scales": list(c.scales),
            "explanation": c.explanation,
            "control": c.control,
            "no_control": c.no_control,
            "control_value": m.control if m else None,
            "control_detail": m.control_detail if m else "",
            "interval": _interval_of(c, m),
            "value": m.value if m else None,
            "verdict": verdict,
            "detail": detail,
            "data": m.data if m else "",
        })
    return out


def _interval_of(c: Claim, m: Measurement | None) -> list[float] | None:
    if m is None or m.count is None:
        return None
    return list(binomial_interval(*m.count, c.criterion.confidence or 0.95))


def _count(pair: Any, what: str) -> tuple[int, int]:
    try:
        k, n = (int(_plain(v)) for v in pair)
        if any(float(_plain(v)) != int(_plain(v)) for v in pair):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"claim {what}: a count is (k, n), two whole numbers, got {pair!r}") from None
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"claim {what}: a count needs 0 <= k <= n and n >= 1, got k={k}, n={n}")
    return k, n


def _pair(raw: Any) -> tuple[int, int] | None:
    return None if raw is None else (int(raw[0]), int(raw[1]))


def _plain(value: Any) -> Any:
    """numpy scalars and 0-d arrays to Python scalars, so that JSON and comparisons are plain."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(v)


#: Verdicts that fail a claim checked at ``ci``.
FAILING: tuple[str, ...] = (NOT_REPRODUCED, NOT_MEASURED, CANNOT_TELL)

_VERDICT_CLASS = {
    CANNOT_TELL: "claim-fail",
    REPRODUCED: "claim-ok",
    NOT_REPRODUCED: "claim-fail",
    NOT_MEASURED: "claim-missing",
    NOT_CHECKED: "claim-skip",
}


def table_html(rows: list[dict], with_chapter: bool = True) -> str:
    """An HTML table of claim rows (from :meth:`Scorecard.rows` or ``claims.json``).

    The data a number came from is printed once above the table where every row shares it, and
    under the measured value otherwise.
    """
    e = html.escape
    datas = {r.get("data") or "" for r in rows}
    shared = datas.pop() if len(datas) == 1 else None
    out = []
    if shared:
        out.append(f'<p class="claims-data"><strong>Data:</strong> {e(shared)}</p>')
    head = (["chapter"] if with_chapter else []) + ["claim", "paper", "ours", "criterion", "verdict"]
    out += ['<table class="claims-table">', "<thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead>",
            "<tbody>"]
    for r in rows:
        ours = e(_fmt(r.get("value")))
        if r.get("interval"):
            lo, hi = r["interval"]
            ours += f' <small>(interval {e(_fmt(lo))}–{e(_fmt(hi))})</small>'
        if r.get("detail"):
            ours += f'<br><small>{e(str(r["detail"]))}</small>'
        if r.get("control"):
            cv = r.get("control_value")
            ours += (f'<br><small class="claims-control">control ({e(r["control"])}): '
                     f'{e(_fmt(cv)) if cv is not None else "not measured"}'
                     + (f'; {e(str(r["control_detail"]))}' if r.get("control_detail") else "") + "</small>")
        if r.get("sweep"):
            ours += f'<br><small class="claims-sweep">{e(r["sweep"])}</small>'
        if shared is None and r.get("data"):
            ours += f'<br><small class="claims-data">data: {e(r["data"])}</small>'
        why = ""
        if r["verdict"] in (NOT_REPRODUCED, CANNOT_TELL) and r.get("explanation"):
            why = f'<br><small>{e(r["explanation"])}</small>'
        cells = ([e(r["chapter"])] if with_chapter else []) + [
            f'<code>{e(r["id"])}</code><br>{e(r["statement"])}<br><small>{e(str(r["where"]))}</small>',
            e(_fmt(r["paper_value"])),
            ours,
            f'{e(r["metric"])}: <strong>{e(r["criterion"])}</strong>',
            f'<span class="claim-verdict {_VERDICT_CLASS.get(r["verdict"], "")}">{r["verdict"]}</span>{why}',
        ]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)
