"""The window-strategy interface: which windows of one query run, in what order, and how their answers
build the query's order. A strategy owns its checks, the settings its journal header records (the keys
`--resume` compares) and its per-query state machine; the scheduler, the journal and the report reach it
only through this interface and `strategies.registry`, never by its name.

How to add a strategy
---------------------
1. Write one module `rearank_cli/rerank/strategies/NAME.py` with a `Strategy` subclass (its `check`
   and `new_state`) and its state machine (a `StrategyState`), and at module level
   `STRATEGY = YourStrategy(name="...", summary="...")`.
2. Its own parameters, if any: a `StrategyParams` subclass in the same module whose fields are declared
   with `settings.base.setting()` (names and flags starting with the strategy's name: `NAME_...`,
   `--NAME-...`), and `Params` pointing at it. `rearank rerank` gets one flag (and one `--config` key)
   per field from the registry; read the values with `self.params_of(settings)`. The journal header and the
   manifest record them, so a resumed run with other values is refused.
3. Add the module's dotted path to `registry.STRATEGY_MODULES` (or call `registry.register_module`) and
   write its tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from rearank_cli.errors import InputError
from rearank_cli.settings.base import Settings, fields


@dataclass(frozen=True, kw_only=True)
class StrategyParams(Settings):
    """Base of a strategy's own parameters (a strategy without any uses it as is). `rearank rerank` lists
    their flags in `--help` right after `--strategy`."""

    command = "rerank"
    #: the setting of `rearank rerank` whose flag these parameters' flags follow in `--help`
    follows: ClassVar[str] = "strategy"


class StrategyState(Protocol):
    """One query's state machine under a window strategy."""

    query: Any

    @property
    def applied(self) -> int:
        """Windows applied so far (replayed or generated)."""

    @property
    def done(self) -> bool:
        """True when the query's order is settled."""

    @property
    def critical_path(self) -> int:
        """The longest chain of dependent windows applied so far."""

    def ready(self) -> list[Any]:
        """The windows (`plan.Window`) that can run now and have not been applied (in the order to send them)."""

    def apply(self, window: Any, permutation: Sequence[int]) -> None:
        """Feed back the answer to one ready window."""

    def remaining(self) -> int:
        """Windows still to run (exact or an estimate); 0 exactly when done."""

    def final_docids(self) -> list[str]:
        """The query's order now: the reranked head, then the docs beyond `--depth` in first-stage order."""


@dataclass(frozen=True, kw_only=True)
class Strategy:
    """One window strategy. `settings` below is a `plan.RerankSettings`."""

    #: the name `--strategy` takes
    name: str
    #: one line for listings
    summary: str = ""
    #: a window's `start`/`end` are positions of the query's list (False: slots of a round, see the
    #: strategy's module), so a journal replays window after window in position order
    positional: bool = True
    #: the class of the strategy's own parameters (`StrategyParams`: none)
    Params: ClassVar[type[StrategyParams]] = StrategyParams

    @property
    def params(self) -> tuple[str, ...]:
        """The names of the strategy's own parameters (as the journal, the manifest and `--config` name them)."""
        return tuple(field.name for field, _, _ in fields(self.Params))

    def params_of(self, settings: Any) -> StrategyParams:
        """This strategy's parameters in `settings` (a `plan.RerankSettings`): those given, else the defaults."""
        given = settings.strategy_params.get(self.name)
        return given if given is not None else self.Params()

    def window_label(self, pass_: int, index: int, start: int, end: int) -> str:
        """How the report names a journaled window."""
        return f"pass {pass_}, positions {start + 1}–{end}"

    def check(self, settings: Any) -> None:
        """Raise InputError for settings this strategy cannot run with."""

    def journal_settings(self, settings: Any) -> dict[str, Any]:
        """What a journal header records of this strategy (compared on `--resume`); empty for none."""
        return {"strategy": self.name, **self.params_of(settings).as_dict()}

    def summary_settings(self, settings: Any) -> dict[str, Any]:
        """The manifest's `strategy` block's settings: the name and the parameters."""
        return {"strategy": self.name, **self.params_of(settings).as_dict()}

    def new_state(self, query: Any, settings: Any) -> StrategyState:
        """The state machine of `query` (a `plan.QueryInput`)."""
        raise NotImplementedError


def check_window(window: int) -> None:
    """InputError unless a window holds at least two passages."""
    if window < 2:
        raise InputError(f"window must be at least 2, got {window}")
