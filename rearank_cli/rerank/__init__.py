"""Listwise reranking over windows, in one-way steps:

`inputs` (run + texts -> `QueryInput`s) -> `plan` (settings, windows) -> `strategies` (each query's state
machine: the sliding window or top-down partitioning) ->
`scheduler` (windows -> backend `Request`s -> parsed permutations, each finished window appended to the
`journal`) -> `stats`; `merge` joins shard outputs; `records` and `manifests` are what crosses a file boundary.
`rearank rerank` itself (files -> `api.Reranker` -> run + manifest) is `jobs.rerank`, a layer above the API;
nothing here imports it.
"""

from rearank_cli.errors import Interrupted
from rearank_cli.rerank.inputs import (
    LoadedInputs,
    TextSource,
    check_text_source,
    load_queries,
    open_texts,
    parse_shard,
    shard_qids,
)
from rearank_cli.rerank.journal import Journal, JournalFile, read_header, read_journal
from rearank_cli.rerank.manifests import MergeManifest, RerankManifest, ShardFiles, read_manifest
from rearank_cli.rerank.merge import follow_expected, join_shards, merge_manifest
from rearank_cli.rerank.plan import SCORE_MODES, QueryInput, RerankSettings, Window, build_run
from rearank_cli.rerank.records import (
    RESUME_KEYS,
    JournalHeader,
    JournalSettings,
    RunSummary,
    WindowRecord,
)
from rearank_cli.rerank.scheduler import RerankResult, plan_remaining, rerank_queries
from rearank_cli.rerank.stats import FAILURE_KINDS, RerankStats, failure_kinds
from rearank_cli.rerank.strategies.base import Strategy, StrategyParams, StrategyState
from rearank_cli.rerank.strategies.registry import get_strategy, new_state, strategy_names
from rearank_cli.rerank.strategies.sliding import SlidingState
from rearank_cli.rerank.strategies.tdpart import TDPartState
from rearank_cli.stopping import StopSignal

#: the sliding window's query state machine (its name before window strategies)
QueryState = SlidingState
#: the window strategies' names (`--strategy`)
STRATEGIES = strategy_names()

__all__ = [
    "FAILURE_KINDS", "Interrupted", "Journal", "JournalFile", "JournalHeader", "JournalSettings",
    "LoadedInputs", "MergeManifest", "QueryInput", "QueryState", "RESUME_KEYS", "RerankManifest",
    "RerankResult", "RerankSettings", "RerankStats", "RunSummary", "SCORE_MODES", "STRATEGIES", "ShardFiles",
    "SlidingState", "StopSignal", "Strategy", "StrategyParams", "StrategyState", "TDPartState", "get_strategy",
    "new_state", "strategy_names",
    "TextSource", "Window", "WindowRecord", "build_run", "check_text_source", "failure_kinds",
    "follow_expected", "join_shards", "load_queries", "merge_manifest", "open_texts", "parse_shard",
    "plan_remaining", "read_header", "read_journal", "read_manifest", "rerank_queries", "shard_qids",
]
