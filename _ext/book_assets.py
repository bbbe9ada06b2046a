"""Sphinx extension of the book: serve the vendored MathJax and drop duplicate script tags.

- MathJax 3 is vendored from npm into ``_vendor/mathjax/`` of the assembled source (see
  ``lib.build.assemble``). Adding that folder to ``html_static_path`` here, after Jupyter Book has
  read its configuration, copies it to ``_static/mathjax/`` without Jupyter Book also registering
  every ``.js`` file in it as a page script (which loads MathJax twice).
- sphinx-thebe registers its inline configuration script on every read phase; with Sphinx 7 the
  same inline script then appears twice on a page and the second one is a JavaScript error. Each
  page keeps the first copy of every script.
"""

from pathlib import Path


def _add_vendor(app):
    vendor = Path(app.srcdir) / "_vendor"
    if vendor.is_dir():
        app.config.html_static_path.append(str(vendor))


def _script_key(js):
    attrs = getattr(js, "attributes", {}) or {}
    return (str(getattr(js, "filename", js) or ""), attrs.get("body", ""))  # inline: None or ""


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    files = context.get("script_files")
    if not files:
        return
    seen, kept = set(), []
    for js in files:
        key = _script_key(js)
        if key not in seen:
            seen.add(key)
            kept.append(js)
    files[:] = kept  # in place: later listeners (sphinx.ext.mathjax) add to this same list


def setup(app):
    app.connect("builder-inited", _add_vendor)
    # early: a later listener returns a template name, which ends the event (emit_firstresult);
    # the duplicates are in the list by then
    app.connect("html-page-context", _dedupe_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
