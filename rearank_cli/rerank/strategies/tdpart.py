"""Top-down partitioning (TDPart: Parry, MacAvaney and Ganguly, "Top-Down Partitioning for Efficient
List-Wise Ranking", arXiv 2405.14589), as one query's state machine.

A round ranks the top `window` docs of its input list, takes the doc at rank `tdpart_pivot` of that
answer as the pivot, and compares every other doc of the list against the pivot in windows of the pivot
+ `window - 1` docs that all run at once. Docs ranked above the pivot are the candidates (the top
window's `tdpart_pivot - 1` first); the rest, the backfill, stay below in the order they came back.
The next round works on the candidates alone. Choices the paper leaves open, made here:

- A pivot nothing beats: the top window's candidates and the pivot are the settled top
  (`tdpart_pivot` docs), with no further window.
- Over the budget: when more than `tdpart_budget` docs beat the pivot, the next round takes those ranked
  highest within their own window (the 1st of every window, then the 2nd, ...; ties in list order), so
  a window full of strong docs cannot crowd the others out; the rest stay above the pivot, in list order,
  and are not ranked again.
- The final window: a round whose list fits one window ranks it in one window, filled up to `window`
  docs with the docs nearest below it: the budget's overflow and the pivot, then the docs that came back
  just below the pivot in each window of the last round, then those two places below, and so on. A doc
  the model misplaced just under a pivot gets a second look at no extra window. Its docs are settled.
- Depth not a multiple of the window: the docs after the top window are split into
  ceil(rest / (window - 1)) comparison windows of sizes differing by at most one (the pivot first in
  each, as in the paper).
- Fewer than `tdpart_top_k` docs settled (a pivot nothing beats with `tdpart_pivot < tdpart_top_k`):
  the search starts again on the unsettled rest, until `tdpart_top_k` are settled or no doc is left.
- A window that failed or whose answer could not be parsed keeps its input order (as the sliding
  window does): a failed top window makes the doc at rank `tdpart_pivot` of the input the pivot, a
  failed comparison window puts all its docs below the pivot.

In the journal a window's `pass` is its round and `index` its place in the round (0: the round's first
window); `start`/`end` number its slots `index * window` onward (`end - start` = its docs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rearank_cli.errors import InputError
from rearank_cli.rerank.plan import QueryInput, RerankSettings, Window
from rearank_cli.rerank.strategies.base import Strategy, StrategyParams, StrategyState, check_window
from rearank_cli.settings.base import setting


@dataclass(frozen=True, kw_only=True)
class TDPartParams(StrategyParams):
    """Top-down partitioning's own settings: `rearank rerank`'s `--tdpart-*` flags and `--config` keys."""

    tdpart_pivot: int = setting(10, "--tdpart-pivot",
                                help="With tdpart, the pivot is the doc at this rank of the top window's answer.")
    tdpart_top_k: int = setting(10, "--tdpart-top-k", help="With tdpart, settle at least this many docs at the top.")
    tdpart_budget: int = setting(20, "--tdpart-budget",
                                 help="With tdpart, at most this many candidates go on to the next round.")


def partitions(docs: Sequence[str], size: int) -> list[list[str]]:
    """`docs` in order, cut into ceil(len / size) runs whose lengths differ by at most one (longer first)."""
    count = -(-len(docs) // size)
    if count == 0:
        return []
    base, extra = divmod(len(docs), count)
    runs, at = [], 0
    for number in range(count):
        length = base + (number < extra)
        runs.append(list(docs[at : at + length]))
        at += length
    return runs


class TDPartState:
    """One query under top-down partitioning (see the module docstring)."""

    #: True: the paper's plain reading of the boundaries (a final window is not filled; over the budget
    #: the candidates are cut in list order), kept for the benchmark's comparison
    plain = False

    def __init__(self, query: QueryInput, settings: RerankSettings) -> None:
        self.query = query
        params = STRATEGY.params_of(settings)
        self.window = settings.window
        self.pivot_rank = params.tdpart_pivot
        self.budget = params.tdpart_budget
        self.need = params.tdpart_top_k
        self.head = len(query.hits[: settings.depth])
        self.settled: list[str] = []
        self.pool = [docid for docid, _ in query.hits[: settings.depth]]
        self.below: list[str] = []
        self.round = 0
        self.applied = 0
        self.critical_path = 0
        self.level = 0
        self.first: Window | None = None
        #: the docs below the list that fill its final window
        self.fill_docs: set[str] = set()
        self.pivot: str | None = None
        self.candidates: list[str] = []
        self.backfill: list[str] = []
        self.parts: list[Window] = []
        self.answers: dict[int, list[str]] = {}
        #: this round's docs below the pivot: how far below it each came back (1: just below)
        self.distance: dict[str, int] = {}
        self._begin_round()

    # -- the interface the scheduler drives

    @property
    def done(self) -> bool:
        """True when the top is settled."""
        return self.first is None

    def ready(self) -> list[Window]:
        """The round's first window until it is applied, then its comparison windows not yet applied."""
        if self.first is None:
            return []
        if self.pivot is None:
            return [self.first]
        return [part for part in self.parts if part.index not in self.answers]

    def remaining(self) -> int:
        """Windows still to run: this round's, plus one final window (an estimate; 0 when done)."""
        if self.first is None:
            return 0
        if self.pivot is None:
            rest = len(self.pool) - self.window
            return 1 if rest <= 0 else 2 + -(-rest // (self.window - 1))
        return len(self.parts) - len(self.answers) + 1

    def apply(self, window: Window, permutation: Sequence[int]) -> None:
        """Feed back one window's answer (indices into the window, best first)."""
        ranked = [window.docids[i] for i in permutation]
        if self.first is None or window.pass_ != self.round:
            raise RuntimeError(f"window {window.key} applied out of order")
        if window.index == 0 and self.pivot is None and window.docids == self.first.docids:
            self.applied += 1
            if len(self.pool) <= self.window:
                self._settle(ranked, self.level + 1)
            else:
                self._split(ranked)
            return
        part = self.parts[window.index - 1] if 0 < window.index <= len(self.parts) else None
        if part is None or part.docids != window.docids or window.index in self.answers:
            raise RuntimeError(f"window {window.key} applied out of order")
        self.answers[window.index] = ranked
        self.applied += 1
        self.critical_path = max(self.critical_path, self.level + 2)
        if len(self.answers) == len(self.parts):
            self._resolve()

    def final_docids(self) -> list[str]:
        """Settled top, the list in work, what lies below it, then the docs beyond `--depth`."""
        head = self.settled + self.pool + self.below
        return head + [docid for docid, _ in self.query.hits[self.head :]]

    # -- rounds

    def _window(self, index: int, docs: Sequence[str]) -> Window:
        start = index * self.window
        return Window(self.query.qid, self.round, index, start, start + len(docs), tuple(docs))

    def _begin_round(self) -> None:
        """The round's first window: the whole list (filled) when it fits one window, else its top."""
        self.pivot, self.parts, self.answers = None, [], {}
        if len(self.pool) > self.window:
            self.fill_docs = set()
            self.first = self._window(0, self.pool[: self.window])
            return
        room = 0 if self.plain else self.window - len(self.pool)
        nearest = sorted(range(len(self.below)), key=lambda i: self.distance.get(self.below[i], len(self.below)))
        fill = [self.below[i] for i in sorted(nearest[:room])]
        self.fill_docs = set(fill)
        docs = self.pool + fill
        if len(docs) < 2:  # nothing to rank
            self.first = self._window(0, docs)
            self._settle(docs, self.level)
            return
        self.first = self._window(0, docs)

    def _split(self, ranked: list[str]) -> None:
        """The top window's answer: pivot, candidates, backfill; the comparison windows of the rest."""
        self.critical_path = max(self.critical_path, self.level + 1)
        at = self.pivot_rank - 1
        self.pivot = ranked[at]
        self.candidates, self.backfill = ranked[:at], ranked[at + 1 :]
        rest = self.pool[self.window :]
        self.pool = ranked + rest
        self.parts = [self._window(number, [self.pivot, *run])
                      for number, run in enumerate(partitions(rest, self.window - 1), 1)]

    def _resolve(self) -> None:
        """Every comparison window answered: settle the top, or carry the candidates to the next round."""
        assert self.pivot is not None
        winners: list[str] = []
        losers: list[str] = []
        height = {docid: i for i, docid in enumerate(self.candidates)}
        self.distance = {docid: i for i, docid in enumerate(self.backfill, 1)}
        for index in range(1, len(self.parts) + 1):
            answer = self.answers[index]
            at = answer.index(self.pivot)
            winners += answer[:at]
            height.update({docid: i for i, docid in enumerate(answer[:at])})
            losers += answer[at + 1 :]
            self.distance.update({docid: i for i, docid in enumerate(answer[at + 1 :], 1)})
        self.level += 2
        below = self.backfill + losers + self.below
        if not winners:  # a pivot nothing beats: the top window's candidates and the pivot are settled
            self.settled += [*self.candidates, self.pivot]
            self.need -= len(self.candidates) + 1
            self.pool, self.below = [], below
            self._next_segment()
            return
        found = self.candidates + winners
        if not self.plain and len(found) > self.budget:
            keep = set(sorted(found, key=lambda docid: height[docid])[: self.budget])
            found = [d for d in found if d in keep] + [d for d in found if d not in keep]
        self.pool = found[: self.budget]
        self.below = found[self.budget :] + [self.pivot] + below
        self.distance.update({docid: 0 for docid in self.below[: len(found) - len(self.pool) + 1]})
        self.round += 1
        self._begin_round()

    def _settle(self, ranked: list[str], level: int) -> None:
        """The final window's answer: its docs are settled."""
        self.critical_path = max(self.critical_path, level)
        self.level = level
        self.settled += ranked
        self.below = [docid for docid in self.below if docid not in self.fill_docs]
        self.need -= len(ranked)
        self.pool = []
        self._next_segment()

    def _next_segment(self) -> None:
        """Done once `tdpart_top_k` docs are settled (or none is left); else search the rest again."""
        if self.need <= 0 or not self.below:
            self.first = None
            return
        self.pool, self.below = self.below, []
        self.distance = {}
        self.round += 1
        self._begin_round()


@dataclass(frozen=True, kw_only=True)
class TDPart(Strategy):
    """Top-down partitioning (the module docstring); its parameters are `TDPartParams`, which its journals
    record."""

    Params = TDPartParams

    def params_of(self, settings: Any) -> TDPartParams:
        """The tdpart parameters of `settings` (given, else the defaults)."""
        params = super().params_of(settings)
        assert isinstance(params, TDPartParams)
        return params

    def check(self, settings: Any) -> None:
        """One pass, a pivot inside the window, a top-k of at least one, a budget of at least the pivot."""
        check_window(settings.window)
        params = self.params_of(settings)
        if settings.passes != 1:
            raise InputError("--passes repeats the sliding window; --strategy tdpart settles the top once "
                             "(drop --passes or use --strategy sliding)")
        if not 1 <= params.tdpart_pivot <= settings.window - 1:
            raise InputError(f"--tdpart-pivot must be between 1 and the window - 1 ({settings.window - 1}), "
                             f"got {params.tdpart_pivot}")
        if params.tdpart_top_k < 1:
            raise InputError(f"--tdpart-top-k must be at least 1, got {params.tdpart_top_k}")
        if params.tdpart_budget < params.tdpart_pivot:
            raise InputError(f"--tdpart-budget must be at least --tdpart-pivot ({params.tdpart_pivot}), "
                             f"got {params.tdpart_budget}")

    def window_label(self, pass_: int, index: int, start: int, end: int) -> str:
        """The round and the window's place in it."""
        return f"round {pass_ + 1}, " + ("top window" if index == 0 else f"comparison with the pivot {index}")

    def new_state(self, query: Any, settings: Any) -> StrategyState:
        """A `TDPartState`."""
        return TDPartState(query, settings)


STRATEGY = TDPart(name="tdpart", summary="Top-down partitioning: fewer windows, those of one round in parallel.",
                  positional=False)

