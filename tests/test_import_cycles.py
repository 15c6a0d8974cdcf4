"""No import cycles among the project's own modules (fixtures, suites, reports, load).

A cycle (fixtures/process.py <-> fixtures/liveness.py was one) works only while one side imports the
other inside a function; it hides a module boundary in the wrong place. Imports inside functions
count here too: they are the usual way a cycle is papered over.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fixtures", "suites", "reports", "load")
NAMESPACE = "mlops_acceptance"  # the folders are its subpackages (pyproject.toml's package-dir)


def module_graph(root: Path, packages=PACKAGES) -> dict[str, set[str]]:
    """module -> the project modules it imports (anywhere in its body), by their installed names."""
    files = {}
    for package in packages:
        for path in (root / package).rglob("*.py"):
            name = ".".join((NAMESPACE, *path.relative_to(root).with_suffix("").parts))
            files[name.removesuffix(".__init__")] = path
    graph = {}
    for name, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    deps.add(full if full in files else node.module)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_project_has_no_import_cycle():
    graph = module_graph(ROOT)
    # The graph sees the imports (a renamed package would leave it without edges, and the test hollow).
    assert "mlops_acceptance.fixtures.process" in graph["mlops_acceptance.fixtures.liveness"]
    assert cycles(graph) == []


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "__init__.py").write_text("")
    (tmp_path / "fixtures" / "a.py").write_text("from mlops_acceptance.fixtures.b import helper\n")
    (tmp_path / "fixtures" / "b.py").write_text("def helper():\n    from mlops_acceptance.fixtures import a\n    return a\n")
    (tmp_path / "fixtures" / "c.py").write_text("import fixtures.a\n")
    assert cycles(module_graph(tmp_path, ("fixtures",))) == [["mlops_acceptance.fixtures.a", "mlops_acceptance.fixtures.b"]]
