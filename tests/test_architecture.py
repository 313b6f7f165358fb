"""The import contract: no cycles, a pure core, small modules and functions.

Every import statement counts, wherever it stands: inside function bodies and
under TYPE_CHECKING too, since a cycle hidden there is still a cycle for the
reader. `from pkg import name` counts as an import of `pkg.name` when that is a
module, else of `pkg`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "zipserve"
PURE = "zipserve.core"
# What a pure module never imports: the disk, the web framework, a store client, a source.
IMPURE = ("os", "io", "socket", "fastapi", "starlette", "uvicorn", "boto3", "botocore", "anyio",
          "sqlite3", "zipserve.sources", "zipserve.encode", "zipserve.http", "zipserve.service",
          "zipserve.cli", "zipserve.settings")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 40


def module_name(path: Path) -> str:
    """Given a file of the package, return its dotted module name."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Return every module of the package by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: Mapping[str, Path]) -> Iterator[str]:
    """Given a module, yield every module it imports (dotted names), from anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield full if full in known else base


def graph() -> dict[str, set[str]]:
    """Return the package's import graph: module -> the package's modules it imports."""
    known = modules()
    return {name: {m for m in imports_of(name, path, known) if m in known and m != name}
            for name, path in known.items()}


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Given a graph, return its strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize(("edges", "expected"), [
    ({"a": {"b"}, "b": set()}, []),
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}, [["a", "b"], ["c", "d"]]),
])
def test_cycle_finder_table(edges: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert sorted(cycles(edges)) == expected


def test_imports_are_found_in_function_bodies_and_type_checking_blocks(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from x import y\n"
                      "def f():\n    from . import sibling\n    import z.w\n")
    found = set(imports_of("pkg.m", source, {"pkg.sibling": source}))
    assert {"x", "pkg.sibling", "z.w"} <= found


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_pure_modules_import_nothing_impure() -> None:
    known = modules()
    offences = [f"{name} imports {imported}"
                for name, path in known.items() if name == PURE or name.startswith(PURE + ".")
                for imported in imports_of(name, path, known)
                if any(imported == bad or imported.startswith(bad + ".") for bad in IMPURE)]
    assert offences == []


def test_modules_are_small() -> None:
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) >= MAX_MODULE_LINES}
    assert long == {}


def test_functions_are_small() -> None:
    long = {}
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{name}.{node.name}"] = lines
    assert long == {}
