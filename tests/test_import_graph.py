"""The package's layers: modules import one another without a cycle, imports only point down (the core never
reaches the API, the jobs or the CLI, at any depth), no module is over 450 lines. Lazy, in-function imports
count as imports."""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ROOT

#: the layers above the core, top first: a module imports only from its own layer or a lower one; every
#: other module of the package (the root package aside) is the core (formats, prompts, parse, windows,
#: metrics, reward, rerank/, backends/, evaluation/, lucene/, ...)
LAYERS = {
    3: ("rearank_cli.cli", "rearank_cli.commands", "rearank_cli.__main__"),
    2: ("rearank_cli.jobs", "rearank_cli.report"),
    1: ("rearank_cli.api",),
}
CORE = 0
MAX_LINES = 450


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


def layer(name: str) -> int:
    """The layer of a module: 3 CLI, 2 jobs, 1 API, 0 core."""
    for level, prefixes in LAYERS.items():
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            return level
    return CORE


def path_to(graph: dict[str, set[str]], start: str, wanted: Callable[[str], bool]) -> list[str] | None:
    """The import chain from `start` to the first module `wanted` accepts (breadth-first), or None."""
    parents: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        name = queue.popleft()
        for target in sorted(graph.get(name, ())):
            if target in parents:
                continue
            parents[target] = name
            if wanted(target):
                chain = [target]
                while (parent := parents[chain[-1]]) is not None:
                    chain.append(parent)
                return chain[::-1]
            queue.append(target)
    return None


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that points up, and every core module from which an upper layer is reachable."""
    found = [f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)})"
             for name in sorted(graph) for target in sorted(graph[name]) if layer(target) > layer(name)]
    for name in sorted(graph):
        if layer(name) == CORE and (chain := path_to(graph, name, lambda target: layer(target) > CORE)):
            found.append("core module reaches an upper layer: " + " -> ".join(chain))
    return found


def test_layer_check_sees_an_indirect_import_up():
    graph = {"rearank_cli.rerank.plan": {"rearank_cli.windows"}, "rearank_cli.windows": {"rearank_cli.jobs.rerank"},
             "rearank_cli.jobs.rerank": {"rearank_cli.api"}, "rearank_cli.api": {"rearank_cli.rerank.plan"}}
    found = layer_violations(graph)
    assert "rearank_cli.windows (layer 0) imports rearank_cli.jobs.rerank (layer 2)" in found
    assert ("core module reaches an upper layer: rearank_cli.rerank.plan -> rearank_cli.windows -> "
            "rearank_cli.jobs.rerank") in found
    assert layer_violations({"rearank_cli.cli": {"rearank_cli.jobs.eval"}, "rearank_cli.jobs.eval":
                             {"rearank_cli.api", "rearank_cli.evaluation"}, "rearank_cli.api": set(),
                             "rearank_cli.evaluation": set()}) == []


def test_imports_point_down_and_the_core_never_reaches_api_jobs_or_cli():
    modules = module_names()
    graph = {name: imports(path, modules) for name, path in modules.items()}
    assert layer("rearank_cli.backends.vllm.engines") == CORE and layer("rearank_cli.jobs") == 2
    assert "rearank_cli.jobs.rerank" in graph["rearank_cli.commands.rerank"]  # the lazy import is seen
    assert layer_violations(graph) == []


def test_no_module_over_450_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in module_names().items()}
    assert {name: size for name, size in sizes.items() if size > MAX_LINES} == {}
