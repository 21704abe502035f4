"""The package's layering, read from its source: no import loops, no import from a higher layer.

    errors → config → media → model → runtime → trainer → export → engine → cli → demo

Every ``import hearflow…`` counts, also those inside functions (a function-local import is
still a dependency; it only hides it). Modules of one rank that belong to different parts
do not import each other. Third-party imports are not checked here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hearflow"

# rank of each top-level part of the package; a module may import only from its own part or lower ranks
RANK = {
    "__init__": 0, "errors": 0,
    "config": 1,
    "media": 2,
    "model": 3,
    "runtime": 4,
    "trainer": 5,
    "export": 6,  # INT8 calibration reads the trainer's prepared clips
    "engine": 7,
    "cli": 8,
    "demo": 9, "__main__": 9,  # both run the CLI
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _part(module: str) -> str:
    """The top-level part of the package a module belongs to ("media", "cli", ...)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imported(module: str, path: Path, tree: ast.AST, known: set[str]) -> set[str]:
    """The hearflow modules `module` imports, anywhere in its source."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "hearflow")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "hearflow":
                continue
            found.add(target)
            # `from hearflow.engine import sinks` imports the submodule hearflow.engine.sinks
            found.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known)
    return {m for m in found if m in known and m != module}


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    return {m: _imported(m, p, ast.parse(p.read_text(), str(p)), known) for m, p in files.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. import loops."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, deps in sorted(graph.items()):
        here = _part(module)
        for dep in sorted(deps):
            there = _part(dep)
            if there == here:
                continue
            if RANK[there] > RANK[here]:
                bad.append(f"{module} imports {dep} from a higher layer")
            elif RANK[there] == RANK[here]:
                bad.append(f"{module} imports {dep}: {here} and {there} are side by side")
    return bad


def test_every_part_of_the_package_has_a_layer():
    parts = {_part(m) for m in import_graph()}
    assert parts <= set(RANK), f"give these a rank in RANK: {sorted(parts - set(RANK))}"


def test_no_import_loops():
    assert find_cycles(import_graph()) == []


def test_no_import_from_a_higher_layer():
    assert layer_violations(import_graph()) == []


def test_the_checks_catch_a_loop_and_an_upward_import():
    # the checks themselves can fail: a hand-made graph with both defects
    graph = {
        "hearflow.media.a": {"hearflow.engine.b"},
        "hearflow.engine.b": {"hearflow.media.a"},
        "hearflow.demo": {"hearflow.__main__"},
        "hearflow.__main__": set(),
    }
    assert find_cycles(graph) == [["hearflow.engine.b", "hearflow.media.a"]]
    assert layer_violations(graph) == [
        "hearflow.demo imports hearflow.__main__: demo and __main__ are side by side",
        "hearflow.media.a imports hearflow.engine.b from a higher layer",
    ]


@pytest.mark.parametrize("source, expected", [
    ("def f():\n    from hearflow.engine import sinks\n", {"hearflow.engine.sinks", "hearflow.engine"}),
    ("from . import frames\n", {"hearflow.media.frames", "hearflow.media"}),
    ("import hearflow.model.htf as htf\n", {"hearflow.model.htf"}),
])
def test_function_local_and_relative_imports_count(source, expected):
    known = {"hearflow.engine", "hearflow.engine.sinks", "hearflow.media", "hearflow.media.frames",
             "hearflow.model.htf", "hearflow.media.flow"}
    found = _imported("hearflow.media.flow", PACKAGE / "media" / "flow.py", ast.parse(source), known)
    assert found == expected


# --------------------------------------------------------------------------- room sizes
MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 600


def long_functions(tree: ast.AST, module: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Functions (methods too) longer than ``limit`` lines, docstring included."""
    return [f"{module}.{n.name}: {n.end_lineno - n.lineno + 1} lines"
            for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > limit]


def test_no_function_over_60_lines_and_no_file_over_600():
    # a function one reads in one sitting, a module with one job
    long, big = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        long += long_functions(ast.parse(text), _module_name(path))
        if len(text.splitlines()) > MAX_FILE_LINES:
            big.append(f"{_module_name(path)}: {len(text.splitlines())} lines")
    assert long == [] and big == []


def test_the_size_check_catches_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(ast.parse(f"def f():\n{body}\n"), "m") == [f"m.f: {MAX_FUNCTION_LINES + 1} lines"]
    assert long_functions(ast.parse("def g():\n    return 1\n"), "m") == []
