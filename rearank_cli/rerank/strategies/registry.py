"""The window strategies by name: one module per strategy, each defining `STRATEGY` (see
`strategies.base`). `STRATEGY_MODULES` lists them; the first is the default."""

from __future__ import annotations

import importlib
from typing import Any

from rearank_cli.errors import InputError
from rearank_cli.rerank.strategies.base import Strategy, StrategyState

STRATEGY_MODULES: tuple[str, ...] = (
    "rearank_cli.rerank.strategies.sliding",
    "rearank_cli.rerank.strategies.tdpart",
)

_STRATEGIES: dict[str, Strategy] = {}


def strategies() -> dict[str, Strategy]:
    """`{name: strategy}` of every registered strategy, in `STRATEGY_MODULES` order."""
    if not _STRATEGIES:
        for module in STRATEGY_MODULES:
            strategy = importlib.import_module(module).STRATEGY
            _STRATEGIES[strategy.name] = strategy
    return _STRATEGIES


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


def new_state(query: Any, settings: Any) -> StrategyState:
    """The state machine of `query` (a `plan.QueryInput`) under `settings.strategy` (a `plan.RerankSettings`)."""
    return get_strategy(settings.strategy).new_state(query, settings)
