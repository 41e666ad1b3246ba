"""What the page shows, as plain data: per query, per run, per window.

Everything here comes from the existing core: the eval report's per-query values, the journal's
records (parser flags as `rerank` recorded them, `failure_kinds` to name them), `metrics.ndcg` for a
window's own change, `prompts.clean_passage` for the text the model saw. Nothing is imported from
jinja2 or matplotlib.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rearank_cli.metrics import ndcg
from rearank_cli.parse import answer_span
from rearank_cli.prompts import answer_tags, passage_chars
from rearank_cli.report.inputs import Chain
from rearank_cli.rerank.records import WindowRecord
from rearank_cli.rerank.stats import RerankStats, failure_kinds
from rearank_cli.rerank.strategies.base import Strategy
from rearank_cli.rerank.strategies.registry import strategy_of

WINDOW_K = 10


@dataclass
class PassageRow:
    """One input passage of a window: where it was, where the model put it, its label."""

    slot: int
    docid: str
    label: int | None
    chars: int
    moved_to: int
    rank_before: int
    rank_after: int

    @property
    def shift(self) -> int:
        """Positions gained (> 0: promoted)."""
        return self.rank_before - self.rank_after


@dataclass
class WindowView:
    """One model call of one query."""

    number: int
    record: WindowRecord
    rows: list[PassageRow]
    output_parts: tuple[str, str, str] | None
    kinds: list[str]
    ndcg_before: float | None
    ndcg_after: float | None
    #: the window holds slots of a round, not positions of the list (ranks are within the window)
    slots: bool = False
    #: how the strategy names the window (`Strategy.window_label`)
    label: str = ""

    @property
    def delta(self) -> float | None:
        """The window's own nDCG@10 change (its passages, before vs after the model's order)."""
        if self.ndcg_before is None or self.ndcg_after is None:
            return None
        return self.ndcg_after - self.ndcg_before

    @property
    def permutation(self) -> str:
        """The parsed permutation, 1-based as the model writes it."""
        return " > ".join(f"[{i + 1}]" for i in self.record.permutation)

    @property
    def flags(self) -> Mapping[str, Any]:
        """The parser's flags as journaled."""
        return self.record.flags


@dataclass
class TopRow:
    """One doc of a query's final top-k."""

    rank: int
    docid: str
    label: int | None
    start: int | None

    @property
    def shift(self) -> int | None:
        """Positions gained against the first-stage run (None when it is not known)."""
        return None if self.start is None else self.start - self.rank


@dataclass
class QueryRun:
    """One reranked run on one query."""

    value: float | None
    base: float | None
    top: list[TopRow]
    windows: list[WindowView]
    chain: Chain | None

    @property
    def delta(self) -> float | None:
        """Main measure minus the baseline's (None without both)."""
        return None if self.value is None or self.base is None else self.value - self.base


@dataclass
class QueryView:
    """One query: its text, judgments and every run's view of it."""

    qid: str
    anchor: str
    text: str | None
    judged: bool
    runs: list[QueryRun]


@dataclass
class WindowStats:
    """A run's windows: `rerank`'s own counters (`RerankStats`, as its manifest reports them) plus the
    distributions the page draws."""

    counts: RerankStats = field(default_factory=RerankStats)
    recovered: int = 0
    superseded: int = 0
    unfinished_queries: int = 0
    prompt_tokens: list[int] = field(default_factory=list)
    completion_tokens: list[int] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    token_delta: list[tuple[int, float]] = field(default_factory=list)


def split_output(text: str) -> tuple[str, str, str]:
    """The raw output cut around the span the parser reads the ranking from (before, answer, after)."""
    span = answer_span(text)
    if span == text:
        return "", text, ""
    at = text.find(span) if "<answer>" in text else text.rfind(span)
    return text[:at], span, text[at + len(span) :]


def window_view(number: int, record: WindowRecord, judged: dict[str, int] | None, prompt: str,
                strategy: Strategy | None = None) -> WindowView:
    """The view of one journaled window of a run of `strategy` (None: the default one); `judged` is the
    query's qrels (None: not judged)."""
    strategy = strategy or strategy_of(None)
    docids, permutation = record.docids, record.permutation
    start = record.start if strategy.positional else 0
    moved_to = {index: position for position, index in enumerate(permutation)}
    chars = record.max_chars or passage_chars(prompt)
    rows = [
        PassageRow(slot + 1, docid, None if judged is None else judged.get(docid), chars, moved_to[slot] + 1,
                   start + slot + 1, start + moved_to[slot] + 1)
        for slot, docid in enumerate(docids)
    ]
    before = after = None
    if judged is not None:
        labels = [judged.get(d, 0) for d in docids]
        before = ndcg(labels, judged.values(), WINDOW_K)
        after = ndcg([labels[i] for i in permutation], judged.values(), WINDOW_K)
    kinds = [] if record.failed else failure_kinds(record.flags, answer_tags(prompt))
    output = split_output(record.output) if record.output is not None else None
    label = strategy.window_label(record.pass_, record.index, record.start, record.end)
    return WindowView(number, record, rows, output, kinds, before, after, not strategy.positional, label)


def window_stats(views: Sequence[WindowView], chains: dict[str, Chain], prompt: str) -> WindowStats:
    """Counters and distributions of a run's windows (the records in its chains)."""
    stats = WindowStats()
    for view in views:
        record = view.record
        stats.counts.count_record(record, answer_tags(prompt))
        if record.failed:
            continue
        stats.recovered += bool(record.flags.get("recovered"))
        stats.prompt_tokens.append(record.prompt_tokens)
        stats.completion_tokens.append(record.completion_tokens)
        stats.latency.append(record.latency_s)
        if view.delta is not None:
            stats.token_delta.append((record.completion_tokens, view.delta))
    stats.superseded = sum(chain.superseded for chain in chains.values())
    stats.unfinished_queries = sum(not chain.finished for chain in chains.values())
    return stats


def top_rows(order: Sequence[str], judged: dict[str, int] | None, start: dict[str, int] | None,
             k: int) -> list[TopRow]:
    """The final top-k of a query with labels and first-stage ranks."""
    return [TopRow(rank, docid, None if judged is None else judged.get(docid),
                   None if start is None else start.get(docid))
            for rank, docid in enumerate(order[:k], 1)]


def outcome(delta: float | None, tie: float) -> str:
    """win / tie / loss (|delta| <= `tie`, eval's tolerance) / none."""
    if delta is None:
        return "none"
    return "win" if delta > tie else "loss" if delta < -tie else "tie"
