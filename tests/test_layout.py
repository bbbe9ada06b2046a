"""The three layers of lib/ (DESIGN.md, CONTRIBUTING.md): science, chapter protocols and the kit.

- science (every module of lib/ that is neither kit nor protocol) imports nothing of the book but
  the torch kit;
- a protocol (lib/protocols/<slug>.py) imports science and the kit, never another chapter's
  protocol;
- every chapter listed in _toc.yml has its protocol, which defines ``preset``; no science module
  defines one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lib

LIB = Path(lib.__file__).parent
ROOT = LIB.parent

#: The kit: modules every chapter shares (dotted names below ``lib``). ``lib`` is the package itself.
KIT: tuple[str, ...] = (
    "lib", "lib.claims", "lib.data", "lib.torchkit", "lib.scales", "lib.provenance", "lib.plotting",
    "lib.progress", "lib.build", "lib.teaching", "lib.seeds",
)
#: The kit modules that science may import.
SCIENCE_MAY_IMPORT: tuple[str, ...] = ("lib.torchkit", "lib.seeds")
#: Calls that start a random stream. Only ``lib/seeds.py`` makes them (and ``torchkit.seed_all``
#: seeds the global generators): everything else asks ``lib.seeds`` (CONTRIBUTING, "Seeds").
SEEDING_CALLS: tuple[str, ...] = ("default_rng", "SeedSequence", "manual_seed", "RandomState", "seed")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(LIB.rglob("*.py"))}


def is_kit(name: str) -> bool:
    return name in KIT or name.startswith("lib.build.")


def is_protocol(name: str) -> bool:
    return name.startswith("lib.protocols.") or name == "lib.protocols"


def is_science(name: str) -> bool:
    return not (is_kit(name) or is_protocol(name))


def lib_imports(name: str) -> set[str]:
    """The modules of lib/ that module ``name`` imports (absolute names, relative ones resolved).

    ``from lib import gof`` counts as importing ``lib.gof`` (a submodule) where one exists,
    else as importing ``lib``.
    """
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name == "lib" or a.name.startswith("lib."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not (mod == "lib" or mod.startswith("lib.")):
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                out.add(sub if sub in MODULES else mod)
    return out - {name}


def toc_slugs() -> list[str]:
    """The chapters the book lists (the pipeline's own reading of ``_toc.yml``)."""
    from lib import build

    return build.toc_slugs()


def protocol_of(slug: str) -> str:
    return "lib.protocols." + slug.replace("-", "_")


SCIENCE = [n for n in MODULES if is_science(n)]
PROTOCOLS = [n for n in MODULES if is_protocol(n) and n != "lib.protocols"]


def test_the_layers_are_populated():
    assert {"lib.gof", "lib.surprise", "lib.ttfs", "lib.ttfs.alpha1", "lib.ttfs.relu"} <= set(SCIENCE)
    assert len(PROTOCOLS) >= 3
    assert "lib.torchkit" in MODULES


@pytest.mark.parametrize("name", SCIENCE)
def test_science_imports_no_kit_but_the_torch_kit_and_no_protocol(name):
    bad = sorted(m for m in lib_imports(name)
                 if (is_kit(m) and m not in SCIENCE_MAY_IMPORT) or is_protocol(m))
    assert not bad, (f"{MODULES[name].relative_to(ROOT)} is science but imports {', '.join(bad)}: presets, "
                     "experiments, progress bars, claims and styling belong in the chapter's protocol "
                     "(lib/protocols/<slug>.py)")


@pytest.mark.parametrize("name", PROTOCOLS)
def test_a_protocol_imports_no_other_chapters_protocol(name):
    bad = sorted(m for m in lib_imports(name) if is_protocol(m) and m not in (name, "lib.protocols"))
    assert not bad, f"{MODULES[name].relative_to(ROOT)} imports another chapter's protocol: {', '.join(bad)}"


@pytest.mark.parametrize("name", [n for n in MODULES if is_kit(n) and n != "lib"])
def test_the_kit_imports_no_science_and_no_protocol(name):
    bad = sorted(m for m in lib_imports(name) if not is_kit(m))
    assert not bad, f"{MODULES[name].relative_to(ROOT)} is kit but imports {', '.join(bad)}"


def _seeding_calls(path: Path, skip_functions: tuple[str, ...] = ()) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in skip_functions:
            skip.update(id(n) for n in ast.walk(node))
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in skip:
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        if name in SEEDING_CALLS and (name != "seed" or isinstance(f, ast.Attribute)
                                      and ast.unparse(f.value) in ("np.random", "numpy.random", "random")):
            out.append(f"line {node.lineno}: {ast.unparse(node)[:80]}")
    return out


@pytest.mark.parametrize("name", [n for n in MODULES if n != "lib.seeds"])
def test_random_streams_come_from_lib_seeds(name):
    bad = _seeding_calls(MODULES[name], ("seed_all",) if name == "lib.torchkit" else ())
    assert not bad, (f"{MODULES[name].relative_to(ROOT)} seeds a generator itself ({'; '.join(bad)}): "
                     "derive every stream with lib.seeds (seeds.rng / seeds.torch_generator / "
                     "seeds.int_seed), so no two notebook seeds share draws")


def _seed_arithmetic(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
            names = [o.id for o in (node.left, node.right) if isinstance(o, ast.Name)]
            if any(n == "seed" or n.endswith("_seed") for n in names):
                out.append(f"line {node.lineno}: {ast.unparse(node)}")
    return out


@pytest.mark.parametrize("name", [n for n in MODULES if n != "lib.seeds"])
def test_no_arithmetic_on_seeds(name):
    """``seed + i`` makes seed 0's run 1 the run 0 of seed 1: the streams of two notebook seeds
    overlap. With every stream ``SeedSequence([seed, *labels])`` (lib.seeds) and no arithmetic,
    the streams of any two seeds are distinct (``tests/unit/test_seeds.py``)."""
    bad = _seed_arithmetic(MODULES[name])
    assert not bad, (f"{MODULES[name].relative_to(ROOT)} does arithmetic on a seed ({'; '.join(bad)}): "
                     "name the stream instead, seeds.rng(seed, 'label', i)")


def _cpu_literals(path: Path) -> list[str]:
    """``"cpu"`` given as an argument or as a parameter's default: a device hard-coded."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        values = []
        if isinstance(node, ast.Call):
            values = [*node.args, *(k.value for k in node.keywords)]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            values = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
        out += [f"line {v.lineno}" for v in values if isinstance(v, ast.Constant) and v.value == "cpu"]
    return out


@pytest.mark.parametrize("name", [n for n in MODULES if not is_kit(n)])
def test_no_protocol_or_science_module_hard_codes_the_cpu(name):
    """One device policy: the preset's ``device`` reaches every torch computation, through
    ``torchkit.device`` (CPU unless a GPU is asked for); a literal ``"cpu"`` would keep part of a
    chapter on the CPU silently at paper scale on a GPU."""
    bad = _cpu_literals(MODULES[name])
    assert not bad, (f"{MODULES[name].relative_to(ROOT)} hard-codes the device 'cpu' ({', '.join(bad)}): "
                     "take the preset's device (torchkit.device(P.device)) or the model's")


def test_no_science_module_defines_presets():
    for name in SCIENCE:
        tree = ast.parse(MODULES[name].read_text())
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                    if isinstance(t, ast.Name)}
        assert not defined & {"preset", "PRESETS", "Preset"}, \
            f"{MODULES[name].relative_to(ROOT)} defines presets; they belong in the chapter's protocol"


@pytest.mark.parametrize("slug", toc_slugs())
def test_every_written_chapter_has_a_protocol_that_defines_preset(slug):
    name = protocol_of(slug)
    assert name in MODULES, f"chapter {slug} has no protocol: expected {name.replace('.', '/')}.py"
    tree = ast.parse(MODULES[name].read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "preset" for n in tree.body), \
        f"{name.replace('.', '/')}.py does not define preset(scale)"


def test_the_import_reader_resolves_relative_and_package_imports():
    assert "lib.torchkit" in lib_imports("lib.ttfs.relu")
    assert "lib.ttfs" in lib_imports("lib.protocols.ttfs_exact_mapping")
    assert {"lib.scales", "lib.plotting"} <= lib_imports("lib.protocols.surprise_taxonomy")
