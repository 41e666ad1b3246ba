"""The sliding window (spec section 2): windows of `--window` docs moving up by `--step` from the bottom
of the head, `--passes` times, each built on the order the previous one left."""

from __future__ import annotations

from collections.abc import Sequence

from rearank_cli.rerank.plan import QueryInput, RerankSettings, Window
from rearank_cli.windows import schedule


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
