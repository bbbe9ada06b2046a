"""The book's pipeline: execute every chapter notebook, collect the claims, render the HTML book.

``make book`` runs ``python -m lib.build``; ``python -m lib.build --help`` lists the options.

1. jupytext turns each chapter notebook (MyST Markdown) into an ``.ipynb``;
2. papermill executes it with ``scale`` and ``seed`` injected, one worker process per notebook
   (as many at once as ``--jobs``, default the number of cores), into ``_build/<scale>/chapters/``;
3. beside each executed notebook lie its measurements (``<notebook>.measurements.json``, written
   by the notebook's ``Scorecard``), its provenance (``<notebook>.provenance.json``) and its key
   (``<notebook>.key``: the hashes of its inputs and outputs), all published together by atomic
   renames once the run is complete;
4. every chapter's measurements are judged against its current ``claims.yml`` (so that editing a
   criterion re-renders without re-executing), and the scorecard page and the chapters'
   ``{claims-table}`` tables are generated from the verdicts;
5. Jupyter Book renders the executed notebooks (``execute_notebooks: off``, ``-W -n --keep-going``)
   into ``_build/html`` (scale ``book``) or ``_build/<scale>/html``.

A notebook whose inputs did not change (its text, the ``lib`` modules it imports followed
transitively, the kit, ``requirements.txt``, scale, seed and threads) is not executed again: an
edit to one chapter's science re-executes only the notebooks that import it. A failing notebook stops nothing
else; it is
reported with its failing cell at the end and makes the command exit non-zero.

The pipeline is a package of one module per stage: :mod:`~lib.build.discover` (the chapters,
read from ``_toc.yml`` and each chapter's files), :mod:`~lib.build.keys` (cache keys),
:mod:`~lib.build.execute` (workers, local or Dask), :mod:`~lib.build.report` (claims judged,
scorecard, sweeps), :mod:`~lib.build.render` (the assembled source and Jupyter Book) and
:mod:`~lib.build.cli`. Their public names are importable from ``lib.build`` itself.
"""

from __future__ import annotations

from .cli import (  # noqa: F401
    check_arguments,
    main,
)
from .discover import (  # noqa: F401
    NOTEBOOKS,
    Chapter,
    Notebook,
    chapter_info,
    chapters,
    drafts,
    notebooks,
    toc_parts,
    toc_slugs,
    toc_slugs_of,
    tree,
)
from .execute import (  # noqa: F401
    KERNEL_STARTS,
    BuildLock,
    BuildLocked,
    Interrupted,
    Outcome,
    RunReport,
    execute,
    kernel_failed_to_start,
    published_files,
    run,
    run_report,
    unpublish,
    worker_env,
)
from .keys import (  # noqa: F401
    KIT_MODULES,
    LIB,
    data_current,
    dependencies,
    input_hashes,
    input_key,
    input_stats,
    is_cached,
    key_of,
    lib_modules,
    notebook_imports,
    outputs_intact,
    read_key,
)
from .render import (  # noqa: F401
    API_DIR,
    BOOK_FILES,
    CLAIMS_TABLES,
    MATHJAX_SRC,
    SCORECARD_MARKER,
    api_pages,
    assemble,
    failure_notebook,
    html_dir,
    module_kind,
    render,
    rendered_complete,
    teaching_page,
)
from .report import (  # noqa: F401
    VERDICTS,
    chapter_rows,
    claim_problems,
    parse_seeds,
    read_sweeps,
    scorecard_markdown,
    scorecard_rows,
    summary_markdown,
    sweep_dir,
    sweep_figure,
    sweep_summary,
    sweep_text,
    sweeps_markdown,
    write_sweeps,
)
