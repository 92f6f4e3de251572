"""The shape of the package (docs/ARCHITECTURE.md): no import cycles, small modules.

The layer contract itself is import-linter's (``lint-imports``, configured in pyproject.toml and
run by ``.ci/run``); these tests add what import-linter does not check. Function-level imports
count: a cycle hidden inside a function is still a cycle a reader has to untangle.
"""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "loadtest"

# One concept per module: a module that outgrows this has two. The standalone scripts run in
# other environments (every mcp release) with no access to the package, so they are one file.
MAX_LINES = 420
STANDALONE = {"run/targets/reference_server.py", "run/clients/sdk_worker.py"}


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the groups of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def _module_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph("loadtest")
    # A package's __init__ re-exporting its own children is not a cycle a reader follows.
    return {
        module: {
            imported
            for imported in graph.find_modules_directly_imported_by(module)
            if not module.startswith(imported + ".") and not imported.startswith(module + ".")
        }
        for module in graph.modules
    }


def test_strongly_connected_finds_a_planted_cycle() -> None:
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules() -> None:
    cycles = _strongly_connected(_module_graph())
    assert cycles == [], f"modules that import each other: {cycles}"


def _oversized() -> list[tuple[str, int]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in STANDALONE:
            continue
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            found.append((relative, lines))
    return found


def test_no_module_mixes_concepts_by_size() -> None:
    assert _oversized() == [], f"modules over {MAX_LINES} lines: {_oversized()}"


@pytest.mark.parametrize("script", sorted(STANDALONE))
def test_standalone_scripts_import_nothing_from_the_package(script: str) -> None:
    # They run under other mcp releases' interpreters, where loadtest is not installed.
    text = (PACKAGE / script).read_text(encoding="utf-8")
    assert "import loadtest" not in text
    assert "from loadtest" not in text
