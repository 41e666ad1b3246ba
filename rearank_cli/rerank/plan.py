"""What to rerank and how: the settings, one query's inputs, its windows and its state machine.

Pure: no I/O, no backend. `QueryState` holds a query's current head order and the windows still to run;
each window's permutation is applied before the next window's prompt is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from rearank_cli.backends.base import Sampling
from rearank_cli.errors import InputError
from rearank_cli.formats.trec import Hit, Run, write_run_lines
from rearank_cli.prompts import Prompt, get_prompt
from rearank_cli.settings.rerank import SCORE_MODES, WINDOW_SCHEDULES, RerankOptions
from rearank_cli.windows import schedule

__all__ = ["SCORE_MODES", "WINDOW_SCHEDULES", "InOrder", "QueryInput", "QueryState", "RerankSettings", "Window",
           "build_run", "ranked_hits"]


@dataclass(frozen=True)
class RerankSettings:
    """How to rerank: prompt, window schedule, decoding and concurrency (defaults: `RerankOptions`'s, the
    paper's)."""

    prompt: str = RerankOptions.prompt
    window: int = RerankOptions.window
    step: int = RerankOptions.step
    depth: int = RerankOptions.depth
    passes: int = RerankOptions.passes
    window_schedule: str = RerankOptions.window_schedule
    sampling: Sampling = field(default_factory=Sampling)
    #: requests in flight across queries; None = the backend's `preferred_inflight` (or 32)
    max_inflight: int | None = RerankOptions.max_inflight
    #: abort (journal kept) after this many windows in a row failed in the backend
    max_consecutive_failures: int = 50

    @property
    def prompt_spec(self) -> Prompt:
        """The `Prompt` object named by `prompt` (InputError for an unknown name)."""
        return get_prompt(self.prompt)

    @classmethod
    def from_options(cls, options: RerankOptions) -> RerankSettings:
        """The reranking part of `rearank rerank`'s settings."""
        sampling = Sampling(max_tokens=options.max_tokens, temperature=options.temperature, top_p=options.top_p,
                            seed=options.request_seed)
        return cls(prompt=options.prompt, window=options.window, step=options.step, depth=options.depth,
                   passes=options.passes, window_schedule=options.window_schedule, sampling=sampling,
                   max_inflight=options.max_inflight)

    def check(self) -> None:
        """Raise InputError for settings that cannot work."""
        RerankOptions.check_value("prompt", self.prompt)
        RerankOptions.check_value("window_schedule", self.window_schedule)
        if self.depth < 1 or self.passes < 1:
            raise InputError("--depth and --passes must be at least 1")
        if self.max_inflight is not None and self.max_inflight < 1:
            raise InputError("--max-inflight must be at least 1")
        if self.sampling.max_tokens < 1:
            raise InputError("--max-tokens must be at least 1")
        try:
            schedule(self.window_schedule, self.window, self.window, self.step)
        except ValueError as exc:
            raise InputError(str(exc)) from None

    def journal_settings(self, model: str) -> dict[str, Any]:
        """What the journal header records; `RESUME_KEYS` of it must match on `--resume`."""
        return {
            "model": model,
            "prompt": self.prompt,
            "prompt_hash": self.prompt_spec.hash,
            "window": self.window,
            "step": self.step,
            "depth": self.depth,
            "passes": self.passes,
            "window_schedule": self.window_schedule,
            "max_tokens": self.sampling.max_tokens,
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "seed": self.sampling.seed,
        }

    def as_dict(self) -> dict[str, Any]:
        """Settings as plain JSON, named as `rearank rerank`'s settings (a manifest's `settings` when the
        job was not started from the command line)."""
        data = {key: value for key, value in asdict(self).items()
                if key not in ("sampling", "max_consecutive_failures")}
        sampling = asdict(self.sampling)
        sampling["seed"] = -1 if sampling["seed"] is None else sampling["seed"]
        return {**data, **sampling}


@dataclass
class QueryInput:
    """One query to rerank: its text, the first-stage hits in order, and the texts of the head docs."""

    qid: str
    query: str
    hits: list[Hit]
    texts: dict[str, str]


@dataclass(frozen=True)
class Window:
    """One model call: positions `[start, end)` of the head in pass `pass_`; `docids` in input order."""

    qid: str
    pass_: int
    index: int
    start: int
    end: int
    docids: tuple[str, ...]

    @property
    def key(self) -> tuple[str, int, int, int]:
        """Journal key (the docids are checked separately)."""
        return (self.qid, self.pass_, self.start, self.end)


class QueryState:
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

    def next_window(self) -> Window:
        """The next window to run, built on the current order."""
        pass_, index, start, end = self.plan[self.position]
        return Window(self.query.qid, pass_, index, start, end, tuple(self.order[start:end]))

    def apply(self, window: Window, permutation: Sequence[int]) -> None:
        """Reorder the window's positions by `permutation` (indices into the window) and advance."""
        if tuple(self.order[window.start : window.end]) != window.docids:
            raise RuntimeError(f"window {window.key} applied out of order")
        self.order[window.start : window.end] = [window.docids[i] for i in permutation]
        self.position += 1

    def final_docids(self) -> list[str]:
        """The reranked head followed by the docs beyond `--depth` in their first-stage order."""
        return self.order + [docid for docid, _ in self.query.hits[len(self.order) :]]


def build_run(queries: Sequence[QueryInput], orders: dict[str, list[str]],
              score_mode: str = RerankOptions.score_mode) -> Run:
    """The output run: `rank` scores strictly decrease (n, n-1, ..., 1) so no tie can reorder a list;
    `first-stage` copies the first-stage scores by position (the authors' behaviour)."""
    RerankOptions.check_value("score_mode", score_mode)
    return {query.qid: ranked_hits(query, orders[query.qid], score_mode) for query in queries}


def ranked_hits(query: QueryInput, docids: Sequence[str],
                score_mode: str = RerankOptions.score_mode) -> list[Hit]:
    """One query of the output run (see `build_run`)."""
    if score_mode == "rank":
        return [(docid, float(len(docids) - i)) for i, docid in enumerate(docids)]
    return [(docid, score) for docid, (_, score) in zip(docids, query.hits, strict=True)]


class InOrder:
    """Writes queries finished in any order as TREC run lines in their input order: a query waits
    only for the queries before it that are still in flight."""

    def __init__(self, out: IO[str], tag: str, score_mode: str = RerankOptions.score_mode) -> None:
        self.out, self.tag, self.score_mode = out, tag, score_mode
        self.next = 0
        self.waiting: dict[int, tuple[str, list[Hit]]] = {}

    def __call__(self, position: int, query: QueryInput, docids: list[str]) -> None:
        """Take query number `position` (from 0) with its final docids; write what is now in order."""
        self.waiting[position] = (query.qid, ranked_hits(query, docids, self.score_mode))
        while self.next in self.waiting:
            qid, hits = self.waiting.pop(self.next)
            write_run_lines(self.out, {qid: hits}, self.tag)
            self.next += 1
