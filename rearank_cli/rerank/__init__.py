"""Listwise reranking with a sliding window, in one-way steps:

`inputs` (run + texts -> `QueryInput`s) -> `plan` (settings, windows, query state machines) ->
`scheduler` (windows -> backend `Request`s -> parsed permutations, each finished window appended to the
`journal`) -> `stats`; `merge` joins shard outputs. `rearank rerank` itself (files -> `api.Reranker` ->
run + manifest) is `jobs.rerank`, a layer above the API; nothing here imports it.
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
from rearank_cli.rerank.journal import RESUME_KEYS, Journal, WindowRecord
from rearank_cli.rerank.merge import merge_runs
from rearank_cli.rerank.plan import SCORE_MODES, QueryInput, QueryState, RerankSettings, Window, build_run
from rearank_cli.rerank.scheduler import RerankResult, plan_remaining, rerank_queries
from rearank_cli.rerank.stats import FAILURE_KINDS, RerankStats, failure_kinds, summary_lines
from rearank_cli.stopping import StopSignal

__all__ = [
    "FAILURE_KINDS", "RESUME_KEYS", "SCORE_MODES", "Interrupted", "Journal", "LoadedInputs",
    "QueryInput", "QueryState", "RerankResult", "RerankSettings", "RerankStats", "StopSignal",
    "TextSource", "Window", "WindowRecord", "build_run", "check_text_source", "failure_kinds",
    "load_queries", "merge_runs", "open_texts", "parse_shard", "plan_remaining",
    "rerank_queries", "shard_qids", "summary_lines",
]
