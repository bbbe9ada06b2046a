"""The student flavour removes every solution; the teaching page is generated and checked."""

import json

import jupytext
import nbformat
import pytest

from lib import ROOT, build, teaching


def notebook(md: str) -> dict:
    nb = jupytext.reads(md, fmt="md:myst")
    return json.loads(nbformat.writes(nb))


DEMO = """# Demo

Text before.

```{exercise} One
:label: ex-one

Do it.
```

```{solution} ex-one
:class: dropdown

The secret answer is forty-two.
```

````{exercise} Two
:label: ex-two

Nested ```code``` in an exercise.
````

````{solution-start} ex-two
:class: dropdown
````

Hidden explanation before the code.

```{code-cell} ipython3
secret_value = 42
```

More hidden text.

```{code-cell} ipython3
print(secret_value)
```

````{solution-end}
````

After the solution: kept.
"""


def test_student_flavour_removes_both_kinds_of_solution():
    nb, labels = teaching.strip_solutions(notebook(DEMO))
    text = "\\n".join(c["source"] if isinstance(c["source"], str) else "".join(c["source"]) for c in nb["cells"])
    assert labels == ["ex-one", "ex-two"]
    for secret in ("forty-two", "secret_value", "Hidden explanation", "More hidden", "{solution"):
        assert secret not in text, secret
    for kept in ("Text before.", "Do it.", "Nested ```code``` in an exercise.", "After the solution: kept."):
        assert kept in text, kept
    stubs = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(stubs) == 1 and stubs[0]["source"] == teaching.STUB.format(label="ex-two")
    assert stubs[0]["outputs"] == []


def test_an_unclosed_solution_is_an_error():
    with pytest.raises(ValueError, match="unclosed"):
        teaching.strip_solutions(notebook("# T\n\n```{solution} x\nnever closed\n"))
    bad = notebook("# T\n\n````{solution-start} x\n````\n\n```{code-cell} ipython3\n1\n```\n")
    with pytest.raises(ValueError, match="has no solution-end"):
        teaching.strip_solutions(bad)


@pytest.mark.parametrize("slug", build.chapters())
def test_every_chapter_strips_cleanly_and_has_a_teaching_plan(slug):
    folder = ROOT / "chapters" / slug
    labels = teaching.exercise_labels(folder / "theory.md")
    _, removed = teaching.strip_solutions(notebook((folder / "theory.md").read_text()))
    assert set(removed) == labels, "every exercise has a solution, and every solution is removed"
    plan = teaching.load_teaching(folder / "teaching.yml", labels)
    assert len(plan["session"]) >= 3


def test_a_teaching_plan_with_an_unknown_exercise_is_refused(tmp_path):
    p = tmp_path / "teaching.yml"
    p.write_text("prerequisites: [a]\nsession: [b]\nexercises: [nope]\n")
    with pytest.raises(ValueError, match="unknown exercise labels"):
        teaching.load_teaching(p, {"ex-one"})
    p.write_text("prerequisites: [a]\nsession: [b]\n")
    with pytest.raises(ValueError, match="expected exactly the keys"):
        teaching.load_teaching(p, {"ex-one"})


def test_unknown_flavour_is_refused():
    with pytest.raises(ValueError, match="expected one of book, teacher, student"):
        teaching.check_flavour("professor")
