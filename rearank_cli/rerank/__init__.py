"""Listwise reranking with a sliding window, in one-way steps:

`inputs` (run + texts -> `QueryInput`s) -> `plan` (settings, windows, query state machines) ->
`scheduler` (windows -> backend `Request`s -> parsed permutations, each finished window appended to the
`journal`) -> `stats` -> `job` (files -> `api.Reranker` -> run + manifest); `merge` joins shard outputs.
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
from rearank_cli.rerank.job import RERANK_PACKAGES, RerankJob, check_complete, journal_header, run_rerank
from rearank_cli.rerank.journal import RESUME_KEYS, Journal, WindowRecord
from rearank_cli.rerank.merge import merge_runs
from rearank_cli.rerank.plan import SCORE_MODES, QueryInput, QueryState, RerankSettings, Window, build_run
from rearank_cli.rerank.scheduler import (
    Interrupted,
    RerankResult,
    StopSignal,
    plan_remaining,
    rerank_queries,
)
from rearank_cli.rerank.stats import FAILURE_KINDS, RerankStats, failure_kinds, summary_lines

__all__ = [
    "FAILURE_KINDS", "RERANK_PACKAGES", "RESUME_KEYS", "SCORE_MODES", "Interrupted", "Journal", "LoadedInputs",
    "QueryInput", "QueryState", "RerankJob", "RerankResult", "RerankSettings", "RerankStats", "StopSignal",
    "TextSource", "Window", "WindowRecord", "build_run", "check_complete", "check_text_source", "failure_kinds",
    "journal_header", "load_queries", "merge_runs", "open_texts", "parse_shard", "plan_remaining",
    "rerank_queries", "run_rerank", "shard_qids", "summary_lines",
]
