"""The sliding window (spec section 2): windows of `--window` docs moving up by `--step` from the bottom
of the head, `--passes` times, each built on the order the previous one left. Its schedules (`fixed`,
`official`) are pure functions of the list length (`schedule`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rearank_cli.errors import InputError
from rearank_cli.rerank.plan import QueryInput, RerankSettings, Window
from rearank_cli.rerank.strategies.base import Strategy, StrategyState
from rearank_cli.settings.rerank import WINDOW_SCHEDULES as SCHEDULES
from rearank_cli.settings.rerank import RerankOptions

WINDOW, STEP = RerankOptions.window, RerankOptions.step


def fixed_windows(n: int, window: int = WINDOW, step: int = STEP) -> list[tuple[int, int]]:
    """Back-to-front windows that always cover the top of the list.

    Starts at `n - window` and moves up by `step`; when the next start would fall below 0 and the
    top is not yet covered, one last window `(0, min(window, n))` runs. A list of `window` docs or
    fewer is one window (none for fewer than two docs).
    """
    _check(window, step)
    if n < 2:
        return []
    if n <= window:
        return [(0, n)]
    windows = []
    start = n - window
    while True:
        windows.append((start, start + window))
        if start == 0:
            return windows
        start = max(start - step, 0)


def official_windows(n: int, window: int = WINDOW, step: int = STEP) -> list[tuple[int, int]]:
    """The authors' loop, quirks included: a list shorter than `window` gets no window, and the top
    `(n - window) % step` positions never enter one."""
    _check(window, step)
    windows = []
    start, end = n - window, n
    while start >= 0:
        windows.append((start, end))
        start -= step
        end -= step
    return windows


def schedule(name: str, n: int, window: int = WINDOW, step: int = STEP) -> list[tuple[int, int]]:
    """Windows of the schedule `name` (`fixed` or `official`) for a list of `n` documents."""
    if name == "fixed":
        return fixed_windows(n, window, step)
    if name == "official":
        return official_windows(n, window, step)
    raise ValueError(f"unknown window schedule {name!r}; choose one of {', '.join(SCHEDULES)}")


def _check(window: int, step: int) -> None:
    if window < 2:
        raise ValueError(f"window must be at least 2, got {window}")
    if not 1 <= step <= window:
        raise ValueError(f"step must be between 1 and the window ({window}), got {step}")


@dataclass(frozen=True, kw_only=True)
class Sliding(Strategy):
    """The paper's bottom-up sliding window; its parameters are the window's (`--step`, `--passes`,
    `--window-schedule`), which every journal records, so it records nothing of its own."""

    def check(self, settings: Any) -> None:
        """The schedule, window and step must make windows."""
        try:
            schedule(settings.window_schedule, settings.window, settings.window, settings.step)
        except ValueError as exc:
            raise InputError(str(exc)) from None

    def journal_settings(self, settings: Any) -> dict[str, Any]:
        """Nothing: a sliding-window journal records no strategy (as before strategies existed)."""
        return {}

    def new_state(self, query: Any, settings: Any) -> StrategyState:
        """A `SlidingState`."""
        return SlidingState(query, settings)


class SlidingState:
    """The state machine of one query: the current head order and the windows still to run."""

    def __init__(self, query: QueryInput, settings: RerankSettings) -> None:
        self.query = query
        self.order = [docid for docid, _ in query.hits[: settings.depth]]
        spans = schedule(settings.window_schedule, len(self.order), settings.window, settings.step)
        self.plan = [(p, i, s, e) for p in range(settings.passes) for i, (s, e) in enumerate(spans)]
        self.position = 0

    @property
    def done(self) -> bool:
        """True when every window of every pass has been applied."""
        return self.position >= len(self.plan)

    @property
    def applied(self) -> int:
        """Windows applied so far."""
        return self.position

    @property
    def critical_path(self) -> int:
        """Every window waits for the one before: the chain is all windows applied."""
        return self.position

    def next_window(self) -> Window:
        """The next window to run, built on the current order."""
        pass_, index, start, end = self.plan[self.position]
        return Window(self.query.qid, pass_, index, start, end, tuple(self.order[start:end]))

    def ready(self) -> list[Window]:
        """The next window (none when done)."""
        return [] if self.done else [self.next_window()]

    def remaining(self) -> int:
        """Windows still to run."""
        return len(self.plan) - self.position

    def apply(self, window: Window, permutation: Sequence[int]) -> None:
        """Reorder the window's positions by `permutation` (indices into the window) and advance."""
        if tuple(self.order[window.start : window.end]) != window.docids:
            raise RuntimeError(f"window {window.key} applied out of order")
        self.order[window.start : window.end] = [window.docids[i] for i in permutation]
        self.position += 1

    def final_docids(self) -> list[str]:
        """The reranked head followed by the docs beyond `--depth` in their first-stage order."""
        return self.order + [docid for docid, _ in self.query.hits[len(self.order) :]]


STRATEGY = Sliding(name="sliding", summary="The paper's sliding window: bottom-up, one window after another.")
