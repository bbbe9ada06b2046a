"""The command line of the pipeline: ``python -m lib.build`` (``make book``, ``make test``, ...).

``python -m lib.build --scale ci`` executes every chapter notebook at ``ci`` scale (cached where its
inputs did not change), judges the claims, and renders the book; ``--seeds 0-9`` sweeps seeds,
``--slug`` and ``--notebook`` restrict what runs, ``--executor dask`` hands the notebooks to a Dask
cluster. The exit status is 0 when every notebook ran and no claim fails the build, 1 otherwise,
2 for bad arguments or a build already running on the same tree.
"""

from __future__ import annotations

import argparse
import sys
import time

from .. import ROOT, claims, scales, teaching
from .discover import NOTEBOOKS, Notebook, chapters, drafts, notebooks, tree
from .execute import BuildLock, BuildLocked, Interrupted, Outcome, run_report
from .keys import notebook_imports
from .render import html_dir, render, rendered_complete
from .report import claim_problems, parse_seeds, write_sweeps

# --------------------------------------------------------------------------------------------
# Command line


def check_arguments(args: argparse.Namespace) -> None:
    """Validate the command line before anything runs (a ``ValueError`` with one line each)."""
    scales.check(args.scale)
    if args.seeds is not None:
        if args.seed != 0:
            raise ValueError("give either --seed or --seeds, not both")
        args.seed_list = parse_seeds(args.seeds)
    else:
        args.seed_list = [args.seed]
    if args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    if args.timeout < 1:
        raise ValueError(f"--timeout must be at least 1 second, got {args.timeout}")
    if args.scheduler and args.executor != "dask":
        raise ValueError("--scheduler needs --executor dask")


def main(argv: list[str] | None = None) -> int:
    """Run the pipeline with the command-line arguments ``argv`` (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 (all well), 1 (a notebook failed, a claim fails the build, or Jupyter
        Book failed), 2 (bad arguments, an unreadable ``claims.yml``, or the tree is locked).
    """
    ap = argparse.ArgumentParser(prog="python -m lib.build", description="Execute the chapters and render the book.")
    ap.add_argument("--scale", default=scales.DEFAULT_SCALE, help=f"one of {', '.join(scales.SCALES)} (default book)")
    ap.add_argument("--seed", type=int, default=0, help="seed injected into every notebook (default 0)")
    ap.add_argument("--seeds", default=None,
                    help="a sweep: run the chapters for several seeds, e.g. 0-9 or 0,3,5 (instead of --seed)")
    ap.add_argument("--slug", action="append", help="execute only this chapter (repeatable); default: all")
    ap.add_argument("--notebook", action="append", choices=NOTEBOOKS,
                    help="execute only this notebook of each chapter (repeatable), e.g. reproduce for a "
                         "sweep of the claims; default: all (a partial build is never rendered)")
    ap.add_argument("--jobs", type=int, default=None, help="notebooks executed at once (default: number of cores)")
    ap.add_argument("--force", action="store_true", help="execute even where the cache is up to date")
    ap.add_argument("--no-render", action="store_true", help="execute only; do not render the HTML book")
    ap.add_argument("--flavour", default="book", choices=teaching.FLAVOURS,
                    help="book (default), teacher (with solutions) or student (solutions removed)")
    ap.add_argument("--executor", default="local", choices=("local", "dask"), help="where notebooks run")
    ap.add_argument("--scheduler", default="", help="Dask scheduler address (with --executor dask)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds a single cell may run (default 1800)")
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS/torch threads per notebook (default 1; fixed so results do not depend on --jobs)")
    args = ap.parse_args(argv)
    if args.slug:
        args.slug = list(dict.fromkeys(args.slug))  # --slug X --slug X runs X once
    try:
        check_arguments(args)
        nbs = notebooks(args.scale, args.seed, args.slug, args.notebook)
        for slug in chapters():
            claims.load(ROOT / "chapters" / slug / "claims.yml")
        for nb in nbs:
            notebook_imports(nb.source)
    except ValueError as err:  # ClaimsFileError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    if drafts():
        print(f"Not built (folders under chapters/ that _toc.yml does not list yet): {', '.join(drafts())}")
    t0 = time.time()
    import contextlib

    try:
        with contextlib.ExitStack() as locks:
            for seed in args.seed_list:
                locks.enter_context(BuildLock(args.scale, seed))
            return _main_locked(args, nbs, t0)
    except BuildLocked as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _print_outcomes(outcomes: list[Outcome]) -> None:
    width = max(len(o.label) for o in outcomes)
    print("\nnotebook".ljust(width + 2) + "  status        wall time")
    for o in outcomes:
        t = f"{o.seconds:8.1f} s" if o.status in ("executed", "failed") else "       —"
        note = f"  ({o.note})" if o.note else ""
        print(f"{o.label.ljust(width)}  {o.status:<12}{t}{note}")


def _main_locked(args: argparse.Namespace, nbs: list[Notebook], t0: float) -> int:
    seeds = args.seed_list
    what = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
    print(f"Executing {len(nbs) * len(seeds)} notebooks at scale {args.scale!r}, {what}", flush=True)
    try:
        report = run_report(args.scale, seeds, args.slug, args.jobs, args.force, args.executor, args.scheduler,
                            args.timeout, args.threads, args.notebook)
    except Interrupted as stop:
        _print_outcomes(stop.outcomes)
        done = sum(o.status in ("executed", "cached") for o in stop.outcomes)
        print(f"\nInterrupted (Ctrl-C): {done} of {len(stop.outcomes)} notebooks finished; running ones were "
              "stopped, queued ones cancelled. Nothing half-written was published.", file=sys.stderr)
        return 130
    outcomes = report.outcomes
    _print_outcomes(outcomes)
    if report.lost_workers:
        print(f"\nDask workers lost during the run (their notebooks were rescheduled): "
              f"{', '.join(report.lost_workers)}", file=sys.stderr)
    failed = [o for o in outcomes if o.status == "failed"]
    rc = 0
    ran = list(dict.fromkeys(o.label.split("/")[0] for o in outcomes))
    problems = [p for seed in seeds for p in claim_problems(args.scale, seed, ran)]
    if len(seeds) > 1:
        for path in write_sweeps(args.scale, seeds, ran):
            print(f"Sweep summary: {path.relative_to(ROOT)}")
    if problems:
        rc = 1
        print("\nClaims that fail this build:\n" + "\n".join(f"  {p}" for p in problems), file=sys.stderr)
    if args.no_render or args.notebook:
        print("Rendering skipped (--no-render)." if args.no_render else "Rendering skipped (--notebook).")
    elif not rendered_complete(args.scale, seeds[0], allow_failed=True):
        print(f"Rendering skipped: not every chapter has been executed at scale {args.scale!r}, seed "
              f"{seeds[0]}; run `python -m lib.build --scale {args.scale} --seed {seeds[0]}` to render the book.")
    else:
        print("Rendering the book with Jupyter Book (-W -n --keep-going) ...", flush=True)
        code, log = render(args.scale, seeds[0], args.flavour)
        if code != 0:
            rc = 1
            print(f"Jupyter Book failed (exit {code}):\n{log[-6000:]}", file=sys.stderr)
        else:
            print(f"Book rendered: {html_dir(args.scale, seeds[0], args.flavour) / 'index.html'}")
    for o in failed:
        seed = int(o.label.split("@seed")[1]) if "@seed" in o.label else 0
        where = tree(args.scale, seed).relative_to(ROOT)
        print(f"\nFAILED {o.label} (see {where}/chapters/{o.label.split('@')[0]}.error.txt)\n{o.error[-4000:]}",
              file=sys.stderr)
    print(f"\n{len(outcomes) - len(failed)} of {len(outcomes)} notebooks ok, {len(failed)} failed; "
          f"total {time.time() - t0:.1f} s")
    return 1 if failed else rc
