"""What to rerank and how: the settings, one query's inputs and its windows.

Pure: no I/O, no backend. Which windows run and how their answers make a query's order is the window
strategy's (`rerank.strategies`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from typing import IO, Any

from rearank_cli.backends.base import Sampling
from rearank_cli.errors import InputError
from rearank_cli.formats.trec import Hit, Run, write_run_lines
from rearank_cli.prompts.base import PromptFamily, Tokenizer
from rearank_cli.prompts.registry import get_family
from rearank_cli.rerank.strategies.base import StrategyParams
from rearank_cli.rerank.strategies.registry import get_strategy, params_by_name, split_params, strategies
from rearank_cli.settings.rerank import SCORE_MODES, WINDOW_SCHEDULES, RerankOptions

__all__ = ["SCORE_MODES", "WINDOW_SCHEDULES", "InOrder", "QueryInput", "RerankSettings", "Window", "build_run",
           "ranked_hits"]

#: fields of `RerankSettings` that `as_dict` (a manifest's settings) leaves out
_NOT_RECORDED = ("sampling", "max_consecutive_failures", "tokenizer", "prompt_params", "strategy_params")


@dataclass(frozen=True)
class RerankSettings:
    """How to rerank: the prompt family and its parameters, the window strategy and its parameters, decoding
    and concurrency (defaults: `RerankOptions`'s, the paper's). The one settings object a run carries from
    the command line (`from_options`) or the API through the scheduler to the journal and the manifest."""

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
    #: which windows run (`rerank.strategies.registry`)
    strategy: str = RerankOptions.strategy
    #: the strategies' own parameters by strategy name (`Strategy.Params`; a strategy left out: its defaults)
    strategy_params: Mapping[str, StrategyParams] = field(default_factory=dict)
    #: the prompt family's own parameters (`--prompt-param`), by name
    prompt_params: Mapping[str, Any] = field(default_factory=dict)
    #: the model's tokenizer, for a family that cuts passages by tokens (`Reranker` loads it from the model)
    tokenizer: Tokenizer | None = field(default=None, compare=False, repr=False)

    @cached_property
    def prompt_spec(self) -> PromptFamily:
        """The prompt family named by `prompt`, with its parameters and the tokenizer bound (InputError for an
        unknown name or parameter)."""
        return get_family(self.prompt).bind(self.prompt_params, self.tokenizer)

    @classmethod
    def from_options(cls, options: RerankOptions, strategy_params: Sequence[StrategyParams] = ()) -> RerankSettings:
        """The reranking part of `rearank rerank`'s settings (`strategy_params`: the strategies' parameter
        objects its flags made); decoding not given is the prompt family's."""
        family = get_family(options.prompt)
        sampling = family.decoding.sampling(options.max_tokens, options.temperature, options.top_p,
                                            options.request_seed)
        return cls(**{name: getattr(options, name) for name in _SHARED}, sampling=sampling,
                   prompt_params=family.parse_params(options.prompt_params),
                   strategy_params=params_by_name(strategy_params))

    @classmethod
    def build(cls, **values: Any) -> RerankSettings:
        """Settings from keywords, a strategy's parameters among them by name (`NAME_PARAM=...`, as
        `Reranker` takes them): routed to that strategy's parameters object (`registry.split_params`)."""
        params, rest = split_params(values)
        given = rest.pop("strategy_params", {})
        return cls(**rest, strategy_params={**given, **params})

    def check(self) -> None:
        """Raise InputError for settings that cannot work (the strategy checks its own)."""
        _ = self.prompt_spec
        RerankOptions.check_value("window_schedule", self.window_schedule)
        if self.depth < 1 or self.passes < 1:
            raise InputError("--depth and --passes must be at least 1")
        if self.max_inflight is not None and self.max_inflight < 1:
            raise InputError("--max-inflight must be at least 1")
        if self.sampling.max_tokens < 1:
            raise InputError("--max-tokens must be at least 1")
        for name, params in self.strategy_params.items():
            if type(params) is not get_strategy(name).Params:
                raise InputError(f"the parameters of strategy {name!r} must be a {get_strategy(name).Params.__name__}, "
                                 f"not {type(params).__name__}")
        get_strategy(self.strategy).check(self)

    def strategy_settings(self) -> dict[str, Any]:
        """The strategy and its parameters (the manifest's `strategy` block)."""
        return get_strategy(self.strategy).summary_settings(self)

    def journal_settings(self, model: str) -> dict[str, Any]:
        """What the journal header records; `RESUME_KEYS` of it must match on `--resume`."""
        family = self.prompt_spec
        params = family.param_values()
        return {
            "model": model,
            "prompt": self.prompt,
            "prompt_hash": family.hash,
            "window": self.window,
            "step": self.step,
            "depth": self.depth,
            "passes": self.passes,
            "window_schedule": self.window_schedule,
            "max_tokens": self.sampling.max_tokens,
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "seed": self.sampling.seed,
            **get_strategy(self.strategy).journal_settings(self),
            **({"prompt_params": params} if params else {}),
        }

    def decoding_dict(self) -> dict[str, Any]:
        """The decoding settings as `rearank rerank` names them (the values used: a flag not given is the
        prompt family's)."""
        return {"max_tokens": self.sampling.max_tokens, "temperature": self.sampling.temperature,
                "top_p": self.sampling.top_p}

    def as_dict(self) -> dict[str, Any]:
        """Settings as plain JSON, named as `rearank rerank`'s settings (a manifest's `settings` when the
        job was not started from the command line)."""
        data: dict[str, Any] = {}
        for item in fields(self):
            if item.name not in _NOT_RECORDED:
                data[item.name] = getattr(self, item.name)
            if item.name == "strategy":  # every strategy's parameters, as `rearank rerank` records its flags
                for strategy in strategies().values():
                    data.update(strategy.params_of(self).as_dict())
        if self.prompt_params:
            data["prompt_params"] = [f"{key}={value}" for key, value in self.prompt_params.items()]
        sampling = asdict(self.sampling)
        sampling["seed"] = -1 if sampling["seed"] is None else sampling["seed"]
        return {**data, **sampling}


#: the settings `RerankSettings` takes as `rearank rerank` declares them (same name, same value)
_SHARED = tuple(sorted({item.name for item in fields(RerankSettings)} & set(RerankOptions.__dataclass_fields__)
                       - {"prompt_params"}))


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
