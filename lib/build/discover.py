"""The chapters and notebooks of the book: the registry read from ``_toc.yml``, the build tree."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import ROOT, claims, scales

#: Notebooks of a chapter, in reading order.
NOTEBOOKS: tuple[str, ...] = ("theory", "reproduce")


# --------------------------------------------------------------------------------------------
# Discovery


def tree(scale: str, seed: int = 0) -> Path:
    """The build tree of one scale and seed: ``_build/<scale>/seed-<seed>/``.

    Results are kept per seed, so that ``--seed 1`` never overwrites seed 0, and a book is
    always rendered from the notebooks of a single seed.
    """
    return ROOT / "_build" / scale / f"seed-{seed}"


@dataclass(frozen=True)
class Notebook:
    """One chapter notebook to execute at one scale."""

    slug: str
    name: str
    scale: str
    seed: int

    @property
    def source(self) -> Path:
        return ROOT / "chapters" / self.slug / f"{self.name}.md"

    @property
    def outdir(self) -> Path:
        return tree(self.scale, self.seed) / "chapters" / self.slug

    @property
    def output(self) -> Path:
        return self.outdir / f"{self.name}.ipynb"

    @property
    def keyfile(self) -> Path:
        return self.outdir / f"{self.name}.key"

    @property
    def label(self) -> str:
        return f"{self.slug}/{self.name}" + (f"@seed{self.seed}" if self.seed else "")


def toc_slugs(toc_path: Path = ROOT / "_toc.yml") -> list[str]:
    """The chapter slugs listed in ``_toc.yml``, in order."""
    return toc_slugs_of(yaml.safe_load(toc_path.read_text()))


def toc_parts(toc_path: Path = ROOT / "_toc.yml") -> dict[str, str]:
    """Each chapter slug listed in ``_toc.yml`` with the caption of its part."""
    toc = yaml.safe_load(toc_path.read_text())
    out: dict[str, str] = {}
    for part in toc.get("parts", []):
        caption = str(part.get("caption", ""))
        for slug in toc_slugs_of(part):
            out.setdefault(slug, caption)
    return out


def toc_slugs_of(node) -> list[str]:
    """The chapter slugs under one node of ``_toc.yml`` (a part, or the whole toc), in order."""
    out: list[str] = []

    def walk(n):
        if isinstance(n, dict):
            parts = Path(n.get("file", "")).parts
            if len(parts) >= 2 and parts[0] == "chapters" and parts[1] not in out:
                out.append(parts[1])
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)

    walk(node)
    return out


@dataclass(frozen=True)
class Chapter:
    """One chapter of the book as its files describe it (nothing here is typed twice).

    Attributes:
        slug: its folder under ``chapters/``.
        part: the caption of its part in ``_toc.yml``.
        paper: its paper's key in ``references.bib`` (``paper:`` in its ``claims.yml``).
        citation: the paper's authors and year, from ``references.bib`` ("Gerhard & Gerstner 2010").
        title: the chapter's title, the first heading of its ``index.md``.
    """

    slug: str
    part: str
    paper: str
    citation: str
    title: str

    @property
    def label(self) -> str:
        """``"<citation>: <title>"``, the chapter's heading in the scorecard."""
        return f"{self.citation}: {self.title}"


def _citation(key: str, bib: Path) -> str:
    """``"Gerhard & Gerstner 2010"`` or ``"Stanojevic et al. 2023"`` for the entry ``key`` of ``bib``."""
    import codecs
    import re

    import latexcodec  # noqa: F401 - registers the "ulatex" codec

    entries = _bib_entries(str(bib), bib.stat().st_mtime_ns)
    if key not in entries:
        raise ValueError(f"paper {key!r} is not in {bib.name}")
    authors, year = entries[key]
    names = [re.sub(r"[{}]", "", codecs.decode(a, "ulatex")) for a in authors]
    who = names[0] if len(names) == 1 else " & ".join(names) if len(names) == 2 else f"{names[0]} et al."
    return f"{who} {year}"


@functools.lru_cache(maxsize=4)
def _bib_entries(path: str, mtime_ns: int) -> dict[str, tuple[list[str], str]]:
    import pybtex.database

    db = pybtex.database.parse_file(path)
    return {k: ([" ".join(p.last_names) for p in e.persons.get("author", [])], e.fields.get("year", "n.d."))
            for k, e in db.entries.items()}


def chapter_info(slug: str) -> Chapter:
    """The :class:`Chapter` of ``slug``, read from ``_toc.yml``, its ``claims.yml``,
    ``references.bib`` and its ``index.md``.

    Raises:
        ValueError: where one of them lacks what the chapter needs.
    """
    folder = ROOT / "chapters" / slug
    header, _ = claims.load(folder / "claims.yml")
    parts = toc_parts()
    if slug not in parts:
        raise ValueError(f"chapter {slug!r} is not listed under a part of _toc.yml")
    index = folder / "index.md"
    title = next((line[2:].strip() for line in index.read_text().splitlines() if line.startswith("# ")), "") \
        if index.is_file() else ""
    if not title:
        raise ValueError(f"chapters/{slug}/index.md has no '# ' title")
    return Chapter(slug, parts[slug], header["paper"], _citation(header["paper"], ROOT / "references.bib"), title)


def _chapter_folders() -> list[str]:
    base = ROOT / "chapters"
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def chapters() -> list[str]:
    """The written chapters: listed in ``_toc.yml`` and present under ``chapters/``, in toc order.

    A folder under ``chapters/`` that ``_toc.yml`` does not list is a draft (see
    :func:`drafts`): it is not built. A listed chapter without its folder or its ``claims.yml``
    is an error. There is no registry to edit: a chapter's part, paper and title come from its
    files (:func:`chapter_info`).
    """
    listed = toc_slugs()
    folders = _chapter_folders()
    no_claims = [s for s in listed if s in folders and not (ROOT / "chapters" / s / "claims.yml").is_file()]
    if no_claims:
        raise ValueError(f"chapter folder(s) without a claims.yml: {', '.join(f'chapters/{s}' for s in no_claims)}")
    missing = [s for s in listed if s not in folders]
    if missing:
        raise ValueError(f"_toc.yml lists chapters without a folder under chapters/: {', '.join(missing)}")
    return listed


def drafts() -> list[str]:
    """Chapter folders that ``_toc.yml`` does not list yet: work in progress, never built."""
    listed = set(toc_slugs())
    return [s for s in _chapter_folders() if s not in listed]


def notebooks(scale: str, seed: int, slugs: list[str] | None = None,
              names: list[str] | None = None) -> list[Notebook]:
    """The notebooks to execute for ``slugs`` (default: every written chapter), only those named
    ``names`` (default :data:`NOTEBOOKS`; ``["reproduce"]`` for a sweep of the claims alone)."""
    scales.check(scale)
    bad = [n for n in names or () if n not in NOTEBOOKS]
    if bad:
        raise ValueError(f"unknown notebook(s) {', '.join(bad)}; expected one of {', '.join(NOTEBOOKS)}")
    known = chapters()
    if slugs:
        bad = [s for s in slugs if s not in known]
        if bad:
            raise ValueError(f"unknown chapter(s) {', '.join(bad)}; expected one of {', '.join(known)}")
    out = []
    for slug in slugs or known:
        for name in (n for n in NOTEBOOKS if not names or n in names):
            nb = Notebook(slug, name, scale, seed)
            if not nb.source.is_file():
                raise ValueError(f"chapter {slug} lacks {nb.source.relative_to(ROOT)}")
            out.append(nb)
    return out
