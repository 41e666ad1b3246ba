"""Listwise reranking over windows, in one-way steps:

`inputs` (run + texts -> `QueryInput`s) -> `plan` (settings, windows) -> `strategies` (each query's state
machine: the sliding window or top-down partitioning) ->
`scheduler` (windows -> backend `Request`s -> parsed permutations, each finished window appended to the
`journal`) -> `stats`; `merge` joins shard outputs. `rerank.job` (files -> `api.Reranker` -> run +
manifest, what `rearank rerank` runs) sits above the API and is not re-exported here (the API imports
this package).
"""

from rearank_cli.rerank.inputs import (
    LoadedInputs,
    TextSource,
    check_text_source,
    load_queries,
    open_texts,
    parse_shard,
    shard_qids,
)
from rearank_cli.rerank.journal import RESUME_KEYS, Journal, WindowRecord
from rearank_cli.rerank.merge import merge_runs
from rearank_cli.rerank.plan import SCORE_MODES, STRATEGIES, QueryInput, RerankSettings, Window, build_run
from rearank_cli.rerank.scheduler import (
    Interrupted,
    RerankResult,
    StopSignal,
    plan_remaining,
    rerank_queries,
)
from rearank_cli.rerank.stats import FAILURE_KINDS, RerankStats, failure_kinds, summary_lines
from rearank_cli.rerank.strategies import SlidingState, StrategyState, TDPartState, new_state

#: the sliding window's query state machine (its name before window strategies)
QueryState = SlidingState

__all__ = [
    "FAILURE_KINDS", "RESUME_KEYS", "SCORE_MODES", "STRATEGIES", "Interrupted", "Journal", "LoadedInputs",
    "QueryInput", "QueryState", "RerankResult", "RerankSettings", "RerankStats", "StopSignal",
    "TextSource", "Window", "WindowRecord", "build_run", "check_text_source", "failure_kinds",
    "load_queries", "merge_runs", "open_texts", "parse_shard", "plan_remaining",
    "rerank_queries", "shard_qids", "summary_lines", "SlidingState", "StrategyState", "TDPartState", "new_state",
]
