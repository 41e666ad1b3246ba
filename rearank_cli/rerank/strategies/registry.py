"""The window strategies by name: one module per strategy, each defining `STRATEGY` (see
`strategies.base`). `STRATEGY_MODULES` lists the built-in ones; the first is the default."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from rearank_cli.errors import InputError
from rearank_cli.rerank.strategies.base import Strategy, StrategyParams, StrategyState

STRATEGY_MODULES: tuple[str, ...] = (
    "rearank_cli.rerank.strategies.sliding",
    "rearank_cli.rerank.strategies.tdpart",
)

_STRATEGIES: dict[str, Strategy] = {}


def strategies() -> dict[str, Strategy]:
    """`{name: strategy}` of every registered strategy, the built-in ones first, in `STRATEGY_MODULES` order."""
    if not _STRATEGIES:
        for module in STRATEGY_MODULES:
            register_module(module)
    return _STRATEGIES


def register_module(module: str) -> Strategy:
    """Import `module` (a dotted path) and register its `STRATEGY` (ValueError when the name is taken)."""
    strategy = importlib.import_module(module).STRATEGY
    if not isinstance(strategy, Strategy):
        raise TypeError(f"{module}.STRATEGY is not a Strategy")
    known = strategies() if module not in STRATEGY_MODULES else _STRATEGIES
    if strategy.name in known:
        raise ValueError(f"a strategy called {strategy.name!r} is registered already")
    clash = set(strategy.params) & {name for other in known.values() for name in other.params}
    if clash:
        raise ValueError(f"strategy {strategy.name!r}: parameter(s) {', '.join(sorted(clash))} taken already")
    known[strategy.name] = strategy
    return strategy


def unregister(name: str) -> None:
    """Remove the strategy called `name` (a test's throwaway strategy)."""
    _STRATEGIES.pop(name, None)


def strategy_names() -> tuple[str, ...]:
    """The registered strategies' names."""
    return tuple(strategies())


def get_strategy(name: str) -> Strategy:
    """The strategy called `name`; InputError (exit 2) listing the registered ones otherwise."""
    found = strategies().get(name)
    if found is None:
        raise InputError(f"invalid value for --strategy: {name!r} is not one of {', '.join(strategies())}")
    return found


def strategy_of(name: str | None) -> Strategy:
    """The strategy a record names: the default one for None (files written before strategies) or a name no
    longer registered."""
    known = strategies()
    return known.get(name or "", next(iter(known.values())))


def params_classes() -> tuple[type[StrategyParams], ...]:
    """The parameter classes of the strategies that have parameters, in registry order (their fields are
    `rearank rerank`'s strategy flags)."""
    return tuple(strategy.Params for strategy in strategies().values() if strategy.params)


def params_by_name(objects: Iterable[Any]) -> dict[str, StrategyParams]:
    """`{strategy name: its parameters}` of those of `objects` that are a strategy's parameters."""
    return {strategy.name: item for item in objects for strategy in strategies().values()
            if strategy.params and type(item) is strategy.Params}


def split_params(values: Mapping[str, Any]) -> tuple[dict[str, StrategyParams], dict[str, Any]]:
    """The one place that routes keywords named after a strategy's parameters (`Reranker(...,
    NAME_PARAM=...)`, `RerankSettings.build(NAME_PARAM=...)`) to that strategy's parameters object:
    `({strategy name: its parameters}, the other keywords)`."""
    given: dict[str, dict[str, Any]] = {}
    rest = {}
    owners = {param: strategy for strategy in strategies().values() for param in strategy.params}
    for key, value in values.items():
        if key in owners:
            given.setdefault(owners[key].name, {})[key] = value
        else:
            rest[key] = value
    return {name: strategies()[name].Params(**params) for name, params in given.items()}, rest


def new_state(query: Any, settings: Any) -> StrategyState:
    """The state machine of `query` (a `plan.QueryInput`) under `settings.strategy` (a `plan.RerankSettings`)."""
    return get_strategy(settings.strategy).new_state(query, settings)
