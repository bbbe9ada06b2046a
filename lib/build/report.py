"""Reports: the claims judged against the current ``claims.yml``, the scorecard and the seed sweeps."""

from __future__ import annotations

import json
from pathlib import Path

from .. import ROOT, claims
from .discover import NOTEBOOKS, Notebook, chapter_info, chapters, tree
from .keys import outputs_intact, read_key

# --------------------------------------------------------------------------------------------
# Seed sweeps


def parse_seeds(spec: str) -> list[int]:
    """Seeds from ``"0-9"``, ``"0,3,5"`` or ``"4"`` (non-negative, distinct, in the order given).

    Raises:
        ValueError: for anything else.
    """
    out: list[int] = []
    for part in str(spec).split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if lo > hi:
                    raise ValueError
                out += range(lo, hi + 1)
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(f"--seeds expects non-negative seeds like 0-9 or 0,3,5, got {spec!r}") from None
    if not out or min(out) < 0:
        raise ValueError(f"--seeds expects non-negative seeds like 0-9 or 0,3,5, got {spec!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"--seeds names a seed twice: {spec!r}")
    return out


def sweep_dir(scale: str) -> Path:
    """Where the sweep summaries of a scale lie: ``_build/<scale>/sweeps/<slug>.json``."""
    return ROOT / "_build" / scale / "sweeps"


def sweep_summary(slug: str, scale: str, seeds: list[int]) -> dict:
    """Each claim of a chapter over ``seeds``: its values, how many seeds pass, mean and sd.

    Judged, like the scorecard, against the current ``claims.yml``.
    """
    import numpy as np

    per_seed = {s: {r["id"]: r for r in chapter_rows(slug, scale, s)} for s in seeds}
    _, cs = claims.load(ROOT / "chapters" / slug / "claims.yml")
    out = []
    for c in cs:
        rows = [per_seed[s][c.id] for s in seeds]
        values = [r["value"] for r in rows]
        measured = [v for v in values if v is not None]
        numeric = [float(v) for v in measured if isinstance(v, (int, float)) and not isinstance(v, bool)]
        entry = {
            "id": c.id, "criterion": str(c.criterion), "checked": scale in c.scales,
            "values": values, "seeds": seeds,
            "n_pass": sum(r["verdict"] == claims.REPRODUCED for r in rows),
            "n_measured": len(measured),
            "control_values": [r.get("control_value") for r in rows],
            "n_control_passes": sum(r["verdict"] == claims.CANNOT_TELL for r in rows),
        }
        if numeric and len(numeric) == len(measured):
            arr = np.asarray(numeric)
            entry.update(kind="number", mean=float(np.nanmean(arr)),
                         sd=float(np.nanstd(arr, ddof=1)) if arr.size > 1 else 0.0,
                         min=float(np.nanmin(arr)), max=float(np.nanmax(arr)))
        elif measured and all(isinstance(v, bool) for v in measured):
            entry.update(kind="bool", n_true=sum(measured))
        else:
            entry.update(kind="other")
        out.append(entry)
    return {"chapter": slug, "scale": scale, "seeds": seeds, "claims": out}


def write_sweeps(scale: str, seeds: list[int], slugs: list[str]) -> list[Path]:
    """Write the sweep summary of every chapter of ``slugs`` (files under :func:`sweep_dir`)."""
    d = sweep_dir(scale)
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for slug in slugs:
        path = d / f"{slug}.json"
        path.write_text(json.dumps(sweep_summary(slug, scale, seeds), indent=2) + "\n")
        out.append(path)
    return out


def read_sweeps(scale: str) -> dict[str, dict]:
    """The sweep summaries of the written chapters at ``scale`` (chapters without one are absent)."""
    out = {}
    for slug in chapters():
        path = sweep_dir(scale) / f"{slug}.json"
        if path.is_file():
            try:
                out[slug] = json.loads(path.read_text())
            except json.JSONDecodeError:
                continue
    return out


def sweep_text(entry: dict) -> str:
    """One claim over seeds, for the tables: ``mean ± sd`` or the range of a boolean, and passes."""
    n = len(entry["seeds"])
    if entry["kind"] == "number":
        val = f"{claims._fmt(entry['mean'])} ± {claims._fmt(entry['sd'])}"
    elif entry["kind"] == "bool":
        val = f"true at {entry['n_true']} of {entry['n_measured']} seeds"
    else:
        val = f"{entry['n_measured']} of {n} measured"
    passes = f"{entry['n_pass']}/{n} seeds pass" if entry["checked"] else "not checked at this scale"
    if entry.get("n_control_passes"):
        passes += f", its control meets the criterion at {entry['n_control_passes']}"
    return f"over {n} seeds: {val}; {passes}"


def sweep_figure(entry: dict, path: Path) -> bool:
    """Plot a numeric claim's values over seeds against its criterion; ``False`` if not numeric."""
    if entry["kind"] != "number":
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from .. import plotting

    plotting.setup()
    vals = np.array([np.nan if v is None else float(v) for v in entry["values"]])
    fig, ax = plt.subplots(figsize=(4.5, 2.2))
    ax.plot(vals, np.zeros_like(vals) + np.linspace(-0.15, 0.15, vals.size), "o", color=plotting.color(0),
            alpha=0.8, label="one seed")
    crit = entry["criterion"]
    for token in crit.replace("[", " ").replace("]", " ").replace(",", " ").split():
        try:
            ax.axvline(float(token), color="0.3", ls="--", lw=1)
        except ValueError:
            continue
    ax.set(yticks=[], xlabel=f"{entry['id']} (units of the claim's metric)", title=f"criterion: {crit}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def sweeps_markdown(scale: str, src: Path) -> str:
    """The page of seed sweeps at ``scale``: per chapter a table and one figure per numeric claim."""
    lines = ["# Seed sweeps\n",
             f"A chapter run over several seeds (`make sweep SLUG=<slug> SCALE={scale} SEEDS=N`, or "
             "`python -m lib.build --seeds 0-9`) shows how much each claim's value depends on the seed: "
             "for every claim the mean ± sd over seeds (the range for a yes/no claim) and how many "
             "seeds meet the criterion, judged against the current `claims.yml`.\n"]
    sweeps = read_sweeps(scale)
    if not sweeps:
        lines.append(f"No sweep has been run at scale `{scale}` yet.\n")
        return "\n".join(lines)
    for slug, sw in sweeps.items():
        lines.append(f"## {chapter_info(slug).label}\n")
        lines.append(f"Chapter {{doc}}`chapters/{slug}/index`, seeds {', '.join(map(str, sw['seeds']))}.\n")
        lines.append("| claim | over seeds |\n|---|---|")
        lines += [f"| `{e['id']}` | {sweep_text(e)} |" for e in sw["claims"]]
        lines.append("")
        for e in sw["claims"]:
            rel = f"_sweeps/{slug}-{e['id']}.png"
            if sweep_figure(e, src / rel):
                lines.append(f"```{{figure}} {rel}\n:width: 420px\n\n`{e['id']}` over "
                             f"{len(sw['seeds'])} seeds; dashed: the criterion's threshold.\n```\n")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Scorecard


def chapter_rows(slug: str, scale: str, seed: int = 0) -> list[dict]:
    """The claims of one chapter at ``scale``, judged now against its ``claims.yml``.

    Measurements come from the chapter's published executions only (their key and output
    hashes intact); a notebook that failed or was never executed leaves its claims "not
    measured", with the reason.
    """
    _, cs = claims.load(ROOT / "chapters" / slug / "claims.yml")
    measured: list[claims.Measurement] = []
    reasons = []
    for name in NOTEBOOKS:
        nb = Notebook(slug, name, scale, seed)
        err = nb.outdir / f"{name}.error.txt"
        rec = read_key(nb)
        if err.is_file():
            first = err.read_text().splitlines()[:1] or ["failed"]
            reasons.append(f"the {name} notebook failed: {first[0][:200]}")
            continue
        if rec is None or not outputs_intact(nb, rec):
            reasons.append(f"the {name} notebook has no complete execution at scale {scale}")
            continue
        m = nb.outdir / f"{name}.measurements.json"
        if m.is_file():
            measured += claims.read_measurements(m)
    return claims.judge(cs, measured, scale, slug, missing_reason="; ".join(reasons))


def scorecard_rows(scale: str, seed: int = 0) -> list[dict]:
    """All claim rows of the written chapters at ``scale``, judged now."""
    return [r for slug in chapters() for r in chapter_rows(slug, scale, seed)]


VERDICTS: tuple[str, ...] = (claims.REPRODUCED, claims.NOT_REPRODUCED, claims.CANNOT_TELL, claims.NOT_MEASURED,
                             claims.NOT_CHECKED)


def summary_markdown(rows: list[dict], written: list[str]) -> str:
    """The scorecard's opening table: one row per chapter, the count of each verdict, a link."""
    head = "| chapter | claims | " + " | ".join(VERDICTS) + " |"
    lines = [head, "|" + "---|" * (len(VERDICTS) + 2)]
    for slug in written:
        mine = [r for r in rows if r["chapter"] == slug]
        counts = " | ".join(str(sum(r["verdict"] == v for r in mine)) for v in VERDICTS)
        lines.append(f"| {{ref}}`{chapter_info(slug).label} <scorecard-{slug}>` | {len(mine)} | {counts} |")
    total = " | ".join(f"**{sum(r['verdict'] == v for r in rows)}**" for v in VERDICTS)
    lines.append(f"| **all chapters** | **{len(rows)}** | {total} |")
    return "\n".join(lines) + "\n"


def scorecard_markdown(scale: str, rows: list[dict] | None = None, seed: int = 0) -> str:
    """The generated part of the scorecard page: a summary table and one table per chapter."""
    rows = scorecard_rows(scale, seed) if rows is None else rows
    written = chapters()
    count = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    lines = [
        f"At scale **`{scale}`**, seed **{seed}** (every notebook of this book ran with it): "
        f"{len(rows)} claims in {len(written)} chapters; "
        f"{count[claims.REPRODUCED]} reproduced, {count[claims.NOT_REPRODUCED]} not reproduced, "
        f"{count[claims.CANNOT_TELL]} whose control meets the criterion too (\"{claims.CANNOT_TELL}\"), "
        f"{count[claims.NOT_MEASURED]} not measured, {count[claims.NOT_CHECKED]} not checked at this scale. "
        f"{sum(bool(r['control']) for r in rows)} claims name a negative control (a broken or trivial "
        "method measured with the same metric, shown under our value); the others say why they have none.\n",
        summary_markdown(rows, written),
    ]
    for slug in written:
        info = chapter_info(slug)
        lines.append(f"(scorecard-{slug})=\n## {info.label}\n")
        lines.append(f"Chapter: {{doc}}`chapters/{slug}/index` ({info.part}).\n")
        table = claims.table_html([r for r in rows if r["chapter"] == slug], with_chapter=False)
        lines.append("```{raw} html\n" + table + "\n```\n")
    return "\n".join(lines)


def claim_problems(scale: str, seed: int, slugs: list[str]) -> list[str]:
    """Claims of ``slugs`` that fail the build at ``scale``.

    A claim listed for ``scale`` that no successful notebook recorded fails at every scale (its
    notebook did not measure what the chapter promises). At ``ci`` a claim that does not meet
    its criterion fails too, judged against the current ``claims.yml``. A notebook that failed
    is reported on its own and not repeated here.
    """
    out = []
    for slug in dict.fromkeys(slugs):
        if (tree(scale, seed) / "chapters" / slug / "reproduce.error.txt").exists():
            continue
        for r in chapter_rows(slug, scale, seed):
            if r["verdict"] == claims.NOT_MEASURED:
                out.append(f"{slug}/{r['id']}: not measured at scale {scale} ({r['detail'] or 'never recorded'})")
            elif r["verdict"] == claims.NOT_REPRODUCED and scale == "ci":
                out.append(f"{slug}/{r['id']}: not reproduced, ours = {claims._fmt(r['value'])}, "
                           f"criterion {r['criterion']}")
            elif r["verdict"] == claims.CANNOT_TELL and scale == "ci":
                out.append(f"{slug}/{r['id']}: {claims.CANNOT_TELL}, ours = {claims._fmt(r['value'])}, its "
                           f"control = {claims._fmt(r['control_value'])}, criterion {r['criterion']}")
    return out
