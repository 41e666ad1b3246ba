"""What to rerank and how: the settings, one query's inputs and its windows.

Pure: no I/O, no backend. Which windows run and how their answers make a query's order is the window
strategy's (`rerank.strategies`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from rearank_cli.backends.base import Sampling
from rearank_cli.errors import InputError
from rearank_cli.formats.trec import Hit, Run, write_run_lines
from rearank_cli.prompts.base import PromptFamily
from rearank_cli.prompts.registry import get_family
from rearank_cli.settings.rerank import SCORE_MODES, STRATEGIES, WINDOW_SCHEDULES, RerankOptions
from rearank_cli.windows import schedule

__all__ = ["SCORE_MODES", "STRATEGIES", "WINDOW_SCHEDULES", "InOrder", "QueryInput", "RerankSettings", "Window",
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
    #: which windows run (`rerank.strategies`): `sliding` (the paper) or `tdpart` (top-down partitioning)
    strategy: str = RerankOptions.strategy
    #: tdpart: the pivot is the doc at this rank of the top window's answer
    tdpart_pivot: int = RerankOptions.tdpart_pivot
    #: tdpart: settle at least this many docs at the top
    tdpart_top_k: int = RerankOptions.tdpart_top_k
    #: tdpart: at most this many candidates go on to the next round
    tdpart_budget: int = RerankOptions.tdpart_budget

    @property
    def prompt_spec(self) -> PromptFamily:
        """The prompt family named by `prompt` (InputError for an unknown name)."""
        return get_family(self.prompt)

    @classmethod
    def from_options(cls, options: RerankOptions) -> RerankSettings:
        """The reranking part of `rearank rerank`'s settings."""
        sampling = Sampling(max_tokens=options.max_tokens, temperature=options.temperature, top_p=options.top_p,
                            seed=options.request_seed)
        return cls(prompt=options.prompt, window=options.window, step=options.step, depth=options.depth,
                   passes=options.passes, window_schedule=options.window_schedule, sampling=sampling,
                   max_inflight=options.max_inflight, strategy=options.strategy, tdpart_pivot=options.tdpart_pivot,
                   tdpart_top_k=options.tdpart_top_k, tdpart_budget=options.tdpart_budget)

    def check(self) -> None:
        """Raise InputError for settings that cannot work."""
        get_family(self.prompt)
        RerankOptions.check_value("window_schedule", self.window_schedule)
        RerankOptions.check_value("strategy", self.strategy)
        if self.depth < 1 or self.passes < 1:
            raise InputError("--depth and --passes must be at least 1")
        if self.max_inflight is not None and self.max_inflight < 1:
            raise InputError("--max-inflight must be at least 1")
        if self.sampling.max_tokens < 1:
            raise InputError("--max-tokens must be at least 1")
        try:
            # --step is the sliding window's; tdpart does not use it
            schedule(self.window_schedule, self.window, self.window, self.step if self.strategy != "tdpart" else 1)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.check_strategy()

    def check_strategy(self) -> None:
        """Raise InputError for tdpart settings that cannot work."""
        if self.strategy != "tdpart":
            return
        if self.passes != 1:
            raise InputError("--passes repeats the sliding window; --strategy tdpart settles the top once "
                             "(drop --passes or use --strategy sliding)")
        if not 1 <= self.tdpart_pivot <= self.window - 1:
            raise InputError(f"--tdpart-pivot must be between 1 and the window - 1 ({self.window - 1}), "
                             f"got {self.tdpart_pivot}")
        if self.tdpart_top_k < 1:
            raise InputError(f"--tdpart-top-k must be at least 1, got {self.tdpart_top_k}")
        if self.tdpart_budget < self.tdpart_pivot:
            raise InputError(f"--tdpart-budget must be at least --tdpart-pivot ({self.tdpart_pivot}), "
                             f"got {self.tdpart_budget}")

    def strategy_settings(self) -> dict[str, Any]:
        """The strategy and its parameters (only the name for `sliding`, whose parameters are the window's)."""
        if self.strategy == "sliding":
            return {"strategy": self.strategy}
        return {"strategy": self.strategy, "tdpart_pivot": self.tdpart_pivot, "tdpart_top_k": self.tdpart_top_k,
                "tdpart_budget": self.tdpart_budget}

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
            # a sliding-window journal records no strategy (as before strategies existed)
            **({} if self.strategy == "sliding" else self.strategy_settings()),
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
    """One model call: positions `[start, end)` of the head in pass `pass_` (tdpart: slots of round `pass_`,
    see `strategies.tdpart`); `docids` in input order."""

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
