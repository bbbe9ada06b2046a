"""Sphinx extension of the book: the ``{claims-table}`` directive.

A chapter's claims table is never typed by hand. ``lib.build`` judges each chapter's
measurements against its current ``claims.yml`` and writes the table as HTML into
``_claims/<slug>.html`` of the assembled source; this directive puts that table into a page::

    ```{claims-table}
    ```

in ``chapters/<slug>/index.md`` or at the end of ``reproduce.md`` (the slug is the page's
chapter folder), or ```` ```{claims-table} <slug> ```` elsewhere. The page is rebuilt whenever
the table changes (a criterion edited, a notebook re-executed), and a missing table is an error
that names the file.
"""

from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

TABLES = "_claims"


class ClaimsTable(SphinxDirective):
    """Insert the judged claims table of one chapter."""

    optional_arguments = 1
    has_content = False

    def run(self):
        if self.arguments:
            slug = self.arguments[0]
        else:
            parts = Path(self.env.docname).parts
            if len(parts) < 2 or parts[0] != "chapters":
                raise self.error("claims-table outside chapters/<slug>/ needs the chapter's slug as argument")
            slug = parts[1]
        path = Path(self.env.srcdir) / TABLES / f"{slug}.html"
        if not path.is_file():
            raise self.error(f"no claims table for chapter {slug!r}: {path} is missing "
                             "(the book is rendered by `python -m lib.build`, which writes it)")
        self.env.note_dependency(str(path))
        return [nodes.raw("", path.read_text(), format="html")]


def setup(app):
    app.add_directive("claims-table", ClaimsTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
