"""The package's import graph has no circles, and an import inside a function says why it is there.

The graph is read from the source (ast), with the imports at module level and those inside
functions alike: a circle hidden inside a function is still a circle. `TYPE_CHECKING` blocks do
not run and are left out. cli/ installs as omnireward.cli.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"omnireward": ROOT / "omnireward", "omnireward.cli": ROOT / "cli"}


def modules(packages: dict[str, Path]) -> dict[str, Path]:
    """Dotted module name → file, for every .py under each package root."""
    out = {}
    for name, root in packages.items():
        for f in sorted(root.rglob("*.py")):
            parts = list(f.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([name, *parts])] = f
    return out


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _marked(lines: list[str], node: ast.stmt) -> bool:
    """A comment on the import's own lines, or on the line above it (or above the run of imports it is in)."""
    if any("#" in lines[i] for i in range(node.lineno - 1, node.end_lineno)):
        return True
    i = node.lineno - 2
    while i >= 0 and lines[i].strip().startswith(("from ", "import ", ")")):
        i -= 1
    return i >= 0 and lines[i].strip().startswith("#")


def imports(packages: dict[str, Path]):
    """(importer, imported, line, inside a function, marked with a comment) for every internal import."""
    mods = modules(packages)
    prefixes = tuple(packages)
    found = []
    for name, path in mods.items():
        text = path.read_text()
        lines = text.splitlines()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]

        def targets(node, package=package):
            if isinstance(node, ast.Import):
                return [a.name for a in node.names]
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            return [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]

        def visit(node, in_function, name=name, lines=lines, targets=targets):
            for child in ast.iter_child_nodes(node):
                if _is_type_checking(child):
                    continue
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    for target in targets(child):
                        while target and target not in mods:
                            target = target.rpartition(".")[0]
                        if target and target != name and target.startswith(prefixes):
                            found.append((name, target, child.lineno, in_function, _marked(lines, child)))
                else:
                    visit(
                        child,
                        in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)),
                        name,
                        lines,
                        targets,
                    )

        visit(ast.parse(text), False)
    return found


def cycles(packages: dict[str, Path]) -> list[list[str]]:
    """Every circle of the import graph (its strongly connected parts of more than one module)."""
    graph: dict[str, set[str]] = {}
    for a, b, *_ in imports(packages):
        graph.setdefault(a, set()).add(b)
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def connect(v):  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                out.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def unmarked(packages: dict[str, Path]) -> list[tuple[str, str, int]]:
    """Imports of the package inside functions with no comment saying why."""
    return [(a, b, line) for a, b, line, in_function, marked in imports(packages) if in_function and not marked]


def test_the_package_has_no_import_circles():
    assert cycles(PACKAGES) == []


def test_no_module_imports_the_package_inside_functions_without_saying_why():
    assert unmarked(PACKAGES) == []


def test_the_checker_finds_a_circle_hidden_in_a_function_and_an_unmarked_import(tmp_path):
    pkg = tmp_path / "toy"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from toy.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import g\n    return g\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from toy.a import x\n\n"
        "def g():\n    # deferred: on purpose\n    from toy import a\n    return a\n"
    )
    assert cycles({"toy": pkg}) == [["toy.a", "toy.c", "toy.sub.b"]]
    assert unmarked({"toy": pkg}) == [("toy.sub.b", "toy.c", 2)]
    (pkg / "c.py").write_text("def g():\n    return 1\n")  # the circle broken
    assert cycles({"toy": pkg}) == []
