"""Listwise reranking over windows, in one-way steps:

`inputs` (run + texts -> `QueryInput`s) -> `plan` (settings, windows) -> `strategies` (each query's state
machine: the sliding window or top-down partitioning) ->
`scheduler` (windows -> backend `Request`s -> parsed permutations, each finished window appended to the
`journal`) -> `stats`; `merge` joins shard outputs; `records` and `manifests` are what crosses a file boundary.
`rearank rerank` itself (files -> `api.Reranker` -> run + manifest) is `jobs.rerank`, a layer above the API;
nothing here imports it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below, imported on first use (`rearank --help` loads this package's registry only)
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

#: where each exported name lives
_HOMES = {
    "Interrupted": "rearank_cli.errors",
    "LoadedInputs": "rearank_cli.rerank.inputs",
    "TextSource": "rearank_cli.rerank.inputs",
    "check_text_source": "rearank_cli.rerank.inputs",
    "load_queries": "rearank_cli.rerank.inputs",
    "open_texts": "rearank_cli.rerank.inputs",
    "parse_shard": "rearank_cli.rerank.inputs",
    "shard_qids": "rearank_cli.rerank.inputs",
    "Journal": "rearank_cli.rerank.journal",
    "JournalFile": "rearank_cli.rerank.journal",
    "read_header": "rearank_cli.rerank.journal",
    "read_journal": "rearank_cli.rerank.journal",
    "MergeManifest": "rearank_cli.rerank.manifests",
    "RerankManifest": "rearank_cli.rerank.manifests",
    "ShardFiles": "rearank_cli.rerank.manifests",
    "read_manifest": "rearank_cli.rerank.manifests",
    "follow_expected": "rearank_cli.rerank.merge",
    "join_shards": "rearank_cli.rerank.merge",
    "merge_manifest": "rearank_cli.rerank.merge",
    "SCORE_MODES": "rearank_cli.rerank.plan",
    "QueryInput": "rearank_cli.rerank.plan",
    "RerankSettings": "rearank_cli.rerank.plan",
    "Window": "rearank_cli.rerank.plan",
    "build_run": "rearank_cli.rerank.plan",
    "RESUME_KEYS": "rearank_cli.rerank.records",
    "JournalHeader": "rearank_cli.rerank.records",
    "JournalSettings": "rearank_cli.rerank.records",
    "RunSummary": "rearank_cli.rerank.records",
    "WindowRecord": "rearank_cli.rerank.records",
    "RerankResult": "rearank_cli.rerank.scheduler",
    "plan_remaining": "rearank_cli.rerank.scheduler",
    "rerank_queries": "rearank_cli.rerank.scheduler",
    "FAILURE_KINDS": "rearank_cli.rerank.stats",
    "RerankStats": "rearank_cli.rerank.stats",
    "failure_kinds": "rearank_cli.rerank.stats",
    "Strategy": "rearank_cli.rerank.strategies.base",
    "StrategyParams": "rearank_cli.rerank.strategies.base",
    "StrategyState": "rearank_cli.rerank.strategies.base",
    "get_strategy": "rearank_cli.rerank.strategies.registry",
    "new_state": "rearank_cli.rerank.strategies.registry",
    "strategy_names": "rearank_cli.rerank.strategies.registry",
    "SlidingState": "rearank_cli.rerank.strategies.sliding",
    "TDPartState": "rearank_cli.rerank.strategies.tdpart",
    "StopSignal": "rearank_cli.stopping",
}


def __getattr__(name: str) -> Any:
    """The exported names, imported when first used (PEP 562): `QueryState` is the sliding window's query
    state machine (its name before window strategies), `STRATEGIES` the window strategies' names."""
    if name == "QueryState":
        name = "SlidingState"
    if name == "STRATEGIES":
        from rearank_cli.rerank.strategies.registry import strategy_names

        return strategy_names()
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


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
