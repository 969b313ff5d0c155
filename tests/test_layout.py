"""The package's shape, kept by tests: imports point one way (no cycle among lookalike's
modules, imports inside functions counted), and only the catalogue package speaks SQL."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import lookalike

PACKAGE = Path(lookalike.__file__).parent
SQL_START = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|PRAGMA|ALTER|DROP|BEGIN|COMMIT)\b",
                       re.IGNORECASE)


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = (root.name,) + path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = PACKAGE) -> dict[str, tuple[Path, ast.Module]]:
    return {module_name(p, root): (p, ast.parse(p.read_text(encoding="utf-8"), str(p)))
            for p in sorted(root.rglob("*.py"))}


def imports_of(name: str, path: Path, tree: ast.Module, known: set[str]) -> set[str]:
    """The package's modules that `name` imports anywhere in its file (functions included).
    Importing a package counts as importing its __init__; `from pkg import mod` imports mod."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def add(target: str) -> None:
        if target in known:
            found.add(target)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & known
            found |= submodules
            if len(submodules) < len(node.names):  # names from the package's __init__
                add(target)
    found.discard(name)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    mods = modules(root)
    known = set(mods)
    return {name: imports_of(name, path, tree, known) for name, (path, tree) in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def sql_outside_catalogue(root: Path = PACKAGE) -> list[str]:
    """`file:line` of each SQL string literal or `.execute(` call outside the catalogue."""
    found = []
    for name, (path, tree) in modules(root).items():
        if name == f"{root.name}.catalogue" or name.startswith(f"{root.name}.catalogue."):
            continue
        for node in ast.walk(tree):
            is_sql = (isinstance(node, ast.Constant) and isinstance(node.value, str)
                      and SQL_START.match(node.value))
            is_execute = (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                          and node.func.attr in ("execute", "executemany", "executescript"))
            if is_sql or is_execute:
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return sorted(set(found))


def test_no_import_cycle_among_the_modules():
    assert cycles(import_graph()) == []


def test_no_sql_outside_the_catalogue_package():
    assert sql_outside_catalogue() == []


def test_the_checks_find_a_cycle_and_sql_when_there_are(tmp_path):
    """The guard rails themselves: a cycle through a function-level import, and SQL in a
    module outside the catalogue, are both found."""
    pkg = tmp_path / "pkg"
    (pkg / "catalogue").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "catalogue" / "__init__.py").write_text("")
    (pkg / "catalogue" / "store.py").write_text("def f(c):\n    c.execute('SELECT 1')\n")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("def x():\n    from . import a\n")
    (pkg / "c.py").write_text("Q = 'select * from t'\n")
    assert cycles(import_graph(pkg)) == [["pkg.a", "pkg.b"]]
    assert sql_outside_catalogue(pkg) == ["pkg/c.py:1"]
