"""The shape of the code: no import cycle inside imgcore, no source module too long to read."""

from __future__ import annotations

from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*ROOT.glob("packages/*/src"), *ROOT.glob("plugins/*/src")]
MAX_LINES = 600


def import_cycles(package: str) -> list[str]:
    """Each group of ``package``'s modules that import each other: its members and one
    shortest cycle through them.

    Imports under ``TYPE_CHECKING`` count: a type-only cycle still ties the modules together.
    """
    graph = grimp.build_graph(package, exclude_type_checking_imports=False)
    imports = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    cycles = []
    for group in _strongly_connected(imports):
        start = min(group)
        cycle = _shortest_cycle(start, {m: imports[m] & group for m in group})
        cycles.append(f"{' -> '.join(cycle)}  (all of: {', '.join(sorted(group))})")
    return sorted(cycles)


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    # Tarjan's algorithm, iterative (import graphs can be deep); groups of two or more only.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)
    return groups


def _shortest_cycle(start: str, edges: dict[str, set[str]]) -> list[str]:
    # Breadth-first from start back to start: the path a reader follows to see the cycle.
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(edges[node]):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is in no cycle")


def test_imgcore_has_no_import_cycle() -> None:
    cycles = import_cycles("imgcore")
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_cycle_finder_reports_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert _strongly_connected(edges) == [{"a", "b", "c"}]
    assert _shortest_cycle("a", edges) == ["a", "b", "c", "a"]


def test_executors_use_only_the_public_plugin_surface() -> None:
    # The local executor is a plugin like the SAQ one: both get a Work object and the config,
    # so neither may reach into the engine or a private module.
    graph = grimp.build_graph("imgcore", "imgcore_saq", exclude_type_checking_imports=False)
    executors = ["imgcore._executors.local", *graph.find_descendants("imgcore_saq"), "imgcore_saq"]
    reached = {
        f"{module} -> {imported}"
        for module in executors
        for imported in graph.find_modules_directly_imported_by(module)
        if imported == "imgcore.engine" or imported.startswith("imgcore._")
    }
    assert not reached, sorted(reached)


def test_no_source_module_exceeds_600_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for source in SOURCES
        for path in sorted(source.rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them by what they hold): {long}"
