"""The window-strategy interface: which windows of one query run, in what order, and how their answers
build the query's order. A strategy owns its checks, the settings its journal header records (the keys
`--resume` compares) and its per-query state machine; the scheduler, the journal and the report reach it
only through this interface and `strategies.registry`, never by its name.

How to add a strategy
---------------------
1. Write one module `rearank_cli/rerank/strategies/NAME.py` with a `Strategy` subclass (its `check`,
   `journal_settings` and `new_state`) and its state machine (a `StrategyState`), and at module level
   `STRATEGY = YourStrategy(name="...", summary="...")`.
2. Its parameters are fields of `RerankSettings` named `NAME_...` and flags of
   `settings.rerank.RerankOptions` (flags starting with its name), listed in `params`; `journal_settings`
   returns them, so a resumed run with other values is refused.
3. Add the module's dotted path to `registry.STRATEGY_MODULES` and write its tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rearank_cli.errors import InputError


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
    #: the `RerankSettings` fields that are this strategy's own parameters
    params: tuple[str, ...] = ()
    #: a window's `start`/`end` are positions of the query's list (False: slots of a round, see the
    #: strategy's module), so a journal replays window after window in position order
    positional: bool = True

    def window_label(self, pass_: int, index: int, start: int, end: int) -> str:
        """How the report names a journaled window."""
        return f"pass {pass_}, positions {start + 1}–{end}"

    def check(self, settings: Any) -> None:
        """Raise InputError for settings this strategy cannot run with."""

    def journal_settings(self, settings: Any) -> dict[str, Any]:
        """What a journal header records of this strategy (compared on `--resume`); empty for none."""
        return {"strategy": self.name, **{key: getattr(settings, key) for key in self.params}}

    def summary_settings(self, settings: Any) -> dict[str, Any]:
        """The manifest's `strategy` block's settings: the name and the parameters."""
        return {"strategy": self.name, **{key: getattr(settings, key) for key in self.params}}

    def new_state(self, query: Any, settings: Any) -> StrategyState:
        """The state machine of `query` (a `plan.QueryInput`)."""
        raise NotImplementedError


def check_window(window: int) -> None:
    """InputError unless a window holds at least two passages."""
    if window < 2:
        raise InputError(f"window must be at least 2, got {window}")
