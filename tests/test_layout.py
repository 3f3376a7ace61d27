"""The package's layout is its architecture: every import of eie_jax, function-level ones
included (not those under `if TYPE_CHECKING:`), goes to a folder of the same or a lower
rank, and no chain of imports comes back to where it started."""

import ast
import os

from tests.helpers import ROOT

PACKAGE = os.path.join(ROOT, "eie_jax")

# Lowest first: utilities; data and the compression library; the EIE model and models;
# training, sweeps and the public API; the studies.
RANKS = {
    "utils": 0,
    "data": 1,
    "compression": 1,
    "eie": 2,
    "models": 2,
    "training": 3,
    "sweep": 3,
    "api": 3,
    "studies": 4,
}


def _modules() -> dict[str, str]:
    """Dotted module name -> file, for every module of eie_jax."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[dotted.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _type_checking(node) -> bool:
    test = node.test
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(path: str) -> set[str]:
    """The eie_jax modules a file imports (a package's __init__ counts: it runs too)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    found, stack = set(), [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking(node):
            stack.extend(node.orelse)
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            for i in range(2, len(parts) + 1):  # the module and the packages it runs
                if ".".join(parts[:i]) in MODULES:
                    found.add(".".join(parts[:i]))
        stack.extend(ast.iter_child_nodes(node))
    return found


def _graph() -> dict[str, set[str]]:
    """Module -> the modules it imports. A module's import of the package that contains it
    is left out: a package's __init__ importing its modules, which run it, is how a package
    is built (eie_jax.eie re-exports its modules), not a cycle."""
    graph = {}
    for name, path in MODULES.items():
        graph[name] = {t for t in _imports(path) if t != name and not name.startswith(t + ".")}
    return graph


GRAPH = _graph()


def rank(module: str) -> int:
    parts = module.split(".")
    return RANKS[parts[1]] if len(parts) > 1 and parts[1] in RANKS else 0


def test_every_folder_has_a_rank():
    folders = {name.split(".")[1] for name in MODULES if name.count(".") >= 1}
    loose = {f for f in folders if f not in RANKS}
    assert not loose, f"modules outside the ranked folders: {sorted(loose)}"


def test_no_module_imports_a_higher_rank():
    upward = sorted(
        f"{source} (rank {rank(source)}) -> {target} (rank {rank(target)})"
        for source, targets in GRAPH.items()
        for target in targets
        if target != "eie_jax" and rank(target) > rank(source)
    )
    assert not upward, "\n".join(upward)


def _cycle() -> list[str] | None:
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if nxt == "eie_jax":  # the root re-exports lazily (importlib, on first use)
                continue
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(GRAPH):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle():
    cycle = _cycle()
    assert cycle is None, " -> ".join(cycle)


def test_the_checks_see_a_cycle_and_an_upward_import():
    """The walk itself: an upward import and a cycle planted in a copy of the graph."""
    global GRAPH
    saved = GRAPH
    try:
        GRAPH = {k: set(v) for k, v in saved.items()}
        GRAPH["eie_jax.utils.workdir"].add("eie_jax.studies.compress.pipeline")
        upward = [s for s, ts in GRAPH.items() for t in ts if rank(t) > rank(s)]
        assert upward == ["eie_jax.utils.workdir"]
        GRAPH["eie_jax.compression.huffman"] = {"eie_jax.compression.storage"}
        GRAPH["eie_jax.compression.storage"].add("eie_jax.compression.huffman")
        assert _cycle() is not None
    finally:
        GRAPH = saved
