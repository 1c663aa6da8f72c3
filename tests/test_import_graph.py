"""The package's imports flow one way: no module imports itself back through others, and only the
command line imports the command line.

Every import counts, including the ones deferred into functions: a deferred import hides a cycle
from Python's loader, not from a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "implicit_if"
SOURCE = Path(__file__).resolve().parent.parent / "harness"  # installed as `implicit_if`


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(SOURCE.rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules that `name` imports (`from .x import y` counts `.x.y` when that is a module)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            # `import a.b.c` imports a, a.b and a.b.c; we keep the deepest module of the package
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith(PACKAGE) and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    graph = {name: imported_modules(name, path, known) for name, path in found.items()}
    # a package's __init__ runs before any of its modules: importing `a.b.c` imports `a.b` too,
    # but that is Python's loading order, not a dependency the code chose; leave it out
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def test_the_graph_is_read_from_the_package():
    graph = import_graph()
    assert len(graph) > 50
    # known edges, so a broken reader cannot pass by seeing nothing
    assert "implicit_if.io" in graph["implicit_if.pipeline"]
    assert "implicit_if.winrate" in graph["implicit_if.leaderboard.metrics"] or any(
        m.startswith("implicit_if.winrate") for m in graph["implicit_if.leaderboard.metrics"]
    )


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles (each a set of modules that import each other): " + "; ".join(
        " <-> ".join(component) for component in found
    )


def is_command_line(name: str) -> bool:
    # `python -m implicit_if.train` is the command line too: a `__main__` module is an entry point
    return name.startswith(f"{PACKAGE}.cli") or name.endswith(".__main__")


def test_only_the_command_line_imports_the_command_line():
    offenders = sorted(
        f"{name} imports {target}"
        for name, targets in import_graph().items()
        if not is_command_line(name)
        for target in targets
        if target.startswith(f"{PACKAGE}.cli")
    )
    assert not offenders, offenders
