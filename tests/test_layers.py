"""The import layers of ``src/jebm``: no cycle, local imports included, and each import points
down the layer order.

The layer order, lowest first (a module imports only from its own layer or lower ones):

    core → data → energies → samplers → objectives → train → evaluation → experiment → cli

* core: the sign convention and its helpers (``types``, ``energy``, ``densities``, ...);
* data: ``datasets`` (files and arrays);
* energies: ``energies`` (networks, analytic energies, the 2-D toy data sets);
* samplers: ``samplers``;
* objectives: ``objectives``;
* train: ``train``, ``parallel``;
* evaluation: ``evaluation``, ``partition``, ``diagnostics``, ``sample_quality``, ``tasks``,
  ``plotting``;
* experiment: ``experiment`` (and its short name ``config``);
* cli: ``cli``.

The package ``jebm`` itself is core: it holds ``__version__`` and loads its submodules
lazily, on first attribute access, so it imports nothing at import time.

The imports are read from the source with :mod:`ast`, so imports inside functions count.
"""

import ast
import functools
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS = {
    "core": ("jebm", "jebm.types", "jebm._validate", "jebm._tree", "jebm._cache",
             "jebm.energy", "jebm.densities"),
    "data": ("jebm.datasets",),
    "energies": ("jebm.energies",),
    "samplers": ("jebm.samplers",),
    "objectives": ("jebm.objectives",),
    "train": ("jebm.train", "jebm.parallel"),
    "evaluation": ("jebm.evaluation", "jebm.partition", "jebm.diagnostics",
                   "jebm.sample_quality", "jebm.tasks", "jebm.plotting"),
    "experiment": ("jebm.experiment", "jebm.config"),
    "cli": ("jebm.cli",),
}
ORDER = list(LAYERS)


@functools.cache
def modules(src: Path = SRC) -> dict[str, Path]:
    """Every module of ``src/jebm``, by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted((src / "jebm").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(found: dict[str, Path]) -> dict[str, set[str]]:
    """The jebm modules each module imports, at module level or inside functions."""
    edges = {}
    for name, path in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                for alias in node.names:  # `from a import b`: the module a.b, or a
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in found
                                else base)
        edges[name] = set()
        for target in targets:
            while target and target not in found:  # `import jebm.x.y` names jebm.x.y
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return edges


def layer(name: str) -> str:
    """The layer of a module: that of its longest listed prefix."""
    best = max((prefix for prefixes in LAYERS.values() for prefix in prefixes
                if name == prefix or name.startswith(prefix + ".")), key=len, default=None)
    if best is None:
        raise AssertionError(f"{name} is in no layer of LAYERS; add it to one.")
    return next(key for key, prefixes in LAYERS.items() if best in prefixes)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or ``None``."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checks_see_cycles_and_upward_imports(tmp_path):
    """The checker itself: a local import that closes a cycle is found."""
    pkg = tmp_path / "jebm"
    (pkg / "samplers").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "samplers" / "__init__.py").write_text("from jebm.samplers import base\n")
    (pkg / "samplers" / "base.py").write_text(
        "def f():\n    from jebm.train import step\n")  # upward, inside a function
    (pkg / "train").mkdir()
    (pkg / "train" / "__init__.py").write_text("")
    (pkg / "train" / "step.py").write_text("from ..samplers.base import f\n")
    edges = imports(modules(tmp_path))
    assert edges["jebm.samplers.base"] == {"jebm.train.step"}
    assert edges["jebm.train.step"] == {"jebm.samplers.base"}
    assert find_cycle(edges) == ["jebm.samplers.base", "jebm.train.step",
                                 "jebm.samplers.base"]
    assert ORDER.index(layer("jebm.samplers.base")) < ORDER.index(layer("jebm.train.step"))


def test_no_import_cycle_between_modules():
    cycle = find_cycle(imports(modules()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_between_packages():
    """Collapsed to top-level packages (jebm.experiment.*, jebm.samplers.*, ...)."""
    def top(name):
        return ".".join(name.split(".")[:2])

    edges = {}
    for source, targets in imports(modules()).items():
        edges.setdefault(top(source), set()).update(
            top(t) for t in targets if top(t) != top(source))
    cycle = find_cycle(edges)
    assert cycle is None, "package cycle: " + " -> ".join(cycle)


def test_imports_point_down_the_layers():
    upward = [f"{source} ({layer(source)}) imports {target} ({layer(target)})"
              for source, targets in sorted(imports(modules()).items())
              for target in sorted(targets)
              if ORDER.index(layer(target)) > ORDER.index(layer(source))]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_package_imports_nothing_eagerly():
    assert imports(modules())["jebm"] == set()
