"""Window strategies: which windows of one query run, in what order, and how their answers build the
query's final order. Pure: no I/O, no backend.

Every strategy is a per-query state machine the scheduler drives through one small interface
(`StrategyState`): `ready()` lists the windows that can run now (those the scheduler has not sent yet
are sent together), `apply(window, permutation)` feeds back one window's answer (indices into the
window, best first), `done` says the order is settled, `final_docids()` is the query's order (the
reranked head above the documents beyond `--depth` in their first-stage order).

- `sliding` (`SlidingState`): the bottom-up sliding window of the paper, one window at a time.
- `tdpart` (`TDPartState`): top-down partitioning (Parry, MacAvaney and Ganguly, arXiv 2405.14589):
  the windows of one round run in parallel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rearank_cli.rerank.plan import QueryInput, RerankSettings, Window
from rearank_cli.rerank.strategies.sliding import SlidingState
from rearank_cli.rerank.strategies.tdpart import TDPartState


class StrategyState(Protocol):
    """One query's state machine under a window strategy."""

    query: QueryInput

    @property
    def applied(self) -> int:
        """Windows applied so far (replayed or generated)."""

    @property
    def done(self) -> bool:
        """True when the query's order is settled."""

    @property
    def critical_path(self) -> int:
        """The longest chain of dependent windows applied so far."""

    def ready(self) -> list[Window]:
        """The windows that can run now and have not been applied (in the order to send them)."""

    def apply(self, window: Window, permutation: Sequence[int]) -> None:
        """Feed back the answer to one ready window."""

    def remaining(self) -> int:
        """Windows still to run: exact for `sliding`, an estimate for `tdpart`; 0 exactly when done."""

    def final_docids(self) -> list[str]:
        """The query's order now: the reranked head, then the docs beyond `--depth` in first-stage order."""


def new_state(query: QueryInput, settings: RerankSettings) -> StrategyState:
    """The state machine of `query` under `settings.strategy`."""
    if settings.strategy == "tdpart":
        return TDPartState(query, settings)
    return SlidingState(query, settings)


__all__ = ["SlidingState", "StrategyState", "TDPartState", "new_state"]
