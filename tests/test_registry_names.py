"""A prompt family's or a window strategy's name is written in its own module and nowhere else in the
package's code: everything else reaches it through its registry. The test reads every string literal
of the package (not docstrings or comments: a literal equal to the name). A strategy's parameters
(`NAME_...`) are named in its own module only: no identifier, string or docstring elsewhere in the package
holds `NAME_`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from rearank_cli.prompts import registry as prompt_registry
from rearank_cli.rerank.strategies import registry as strategy_registry
from tests.conftest import ROOT

PACKAGE = ROOT / "rearank_cli"
#: where a name may also be written, besides its own module: the settings layer declares the flags and their
#: defaults (the default family and strategy) and cannot import the core registries (it sits below them)
DECLARATIONS = {PACKAGE / "settings" / "rerank.py"}
#: the default family's name is also the tool's (logger, run tag, VeRL data source): not checked
TOOL = "rearank"


def literals(path: Path) -> list[tuple[int, str]]:
    """`(line, value)` of every string literal of a module."""
    return [(node.lineno, node.value) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def owners() -> dict[str, Path]:
    """`{registered name: its module's file}` of every built-in family and strategy."""
    found = {}
    for module in prompt_registry.FAMILY_MODULES + strategy_registry.STRATEGY_MODULES:
        __import__(module)
        import sys

        item = getattr(sys.modules[module], "FAMILY", None) or sys.modules[module].STRATEGY
        found[item.name] = ROOT / (module.replace(".", "/") + ".py")
    return found


def places(name: str, owner: Path, root: Path = PACKAGE) -> list[str]:
    """`file:line` of each literal equal to `name` outside its owner module and the declarations."""
    return [f"{path.relative_to(root.parent)}:{line}" for path in sorted(root.rglob("*.py"))
            if path != owner and path not in DECLARATIONS for line, value in literals(path) if value == name]


@pytest.mark.parametrize("name", sorted(set(owners()) - {TOOL}))
def test_a_registered_name_is_written_only_in_its_own_module(name):
    assert places(name, owners()[name]) == []


def test_the_check_finds_a_name_written_elsewhere(tmp_path):
    assert {"rankgpt", "sliding", "tdpart"} <= set(owners())
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "tdpart.py").write_text('NAME = "tdpart"\n')
    (package / "prose.py").write_text('"""Mentions tdpart in prose."""\n')
    (package / "stray.py").write_text('if strategy == "tdpart":\n    pass\n')
    assert places("tdpart", package / "tdpart.py", package) == ["pkg/stray.py:1"]


def strategy_modules() -> dict[str, Path]:
    """`{strategy name: its module's file}` of every built-in strategy that has parameters of its own."""
    return {name: path for name, path in owners().items()
            if name in strategy_registry.strategies() and strategy_registry.strategies()[name].params}


def parameter_places(prefix: str, owner: Path, root: Path = PACKAGE) -> list[str]:
    """`file:line` of each identifier, attribute, keyword or string (docstrings too) holding `prefix`, outside
    the owner module."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path == owner:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [getattr(node, key, None) for key in ("id", "attr", "arg", "name", "value")]
            if any(isinstance(name, str) and prefix in name for name in names):
                found.append(f"{path.relative_to(root.parent)}:{getattr(node, 'lineno', 0)}")
    return found


def test_built_in_strategies_with_parameters_are_checked():
    assert "tdpart" in strategy_modules()
    assert {"tdpart_pivot", "tdpart_top_k", "tdpart_budget"} == set(strategy_registry.get_strategy("tdpart").params)


@pytest.mark.parametrize("name", sorted(strategy_modules()))
def test_a_strategys_parameters_are_named_only_in_its_own_module(name):
    assert parameter_places(f"{name}_", strategy_modules()[name]) == []


def test_the_check_finds_a_parameter_named_elsewhere(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "tdpart.py").write_text("tdpart_pivot = 10\n")
    (package / "fine.py").write_text("def f(settings):\n    return settings.strategy_params\n")
    (package / "field.py").write_text("class S:\n    tdpart_budget: int = 20\n")
    (package / "attr.py").write_text("def f(settings):\n    return settings.tdpart_pivot\n")
    (package / "key.py").write_text('KEYS = ("strategy", "tdpart_top_k")\n')
    (package / "call.py").write_text("f(tdpart_pivot=3)\n")
    assert parameter_places("tdpart_", package / "tdpart.py", package) == [
        "pkg/attr.py:2", "pkg/call.py:1", "pkg/field.py:2", "pkg/key.py:1"]
