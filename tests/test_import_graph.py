"""The package's modules import one another without a cycle (lazy, in-function imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT


def module_names() -> dict[str, Path]:
    """`{dotted module name: file}` for every module of rearank_cli (a package is named by its __init__)."""
    found = {}
    for path in sorted((ROOT / "rearank_cli").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules `path` imports anywhere in its code. Importing `a.b.c` runs the packages `a`
    and `a.b` first, so those count as imported too, except the module's own ancestor packages (Python
    imports a module's parents before the module itself, so they are not a cycle)."""
    me = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            targets.add(node.module)
            targets.update(f"{node.module}.{alias.name}" for alias in node.names)
    targets |= {".".join(name.split(".")[:end]) for name in targets for end in range(1, name.count(".") + 1)}
    return {name for name in targets if name in modules and name != me and not me.startswith(name + ".")}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as `[a, b, ..., a]`, or None (depth-first search)."""
    state: dict[str, int] = {}

    def visit(name: str, stack: list[str]) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target, stack)):
                return cycle
        stack.pop()
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name, [])):
            return cycle
    return None


def test_find_cycle_sees_a_cycle_and_its_absence():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_in_the_package():
    modules = module_names()
    graph = {name: imports(path, modules) for name, path in modules.items()}
    assert "rearank_cli.lucene.docstore" in graph["rearank_cli.texts"]  # the lazy import is seen
    assert "rearank_cli.rerank" in graph["rearank_cli.api"]  # a submodule's package runs first
    assert find_cycle(graph) is None
