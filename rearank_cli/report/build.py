"""`rearank report`'s page: the runs (`report.inputs.RunFiles`, read by `jobs.report`), `rearank eval`'s
numbers on them, the qrels and the texts, gathered into the data the template shows.

The numbers come from `rearank eval` itself (`evaluate_runs`, the same measures, means, win/tie/loss and
significance tests), evaluated by the job on the very files the page is about.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rearank_cli.evaluation import TIE_EPSILON
from rearank_cli.formats import Qrels, Run
from rearank_cli.prompts import clean_passage, passage_chars
from rearank_cli.report.inputs import RunFiles, Texts
from rearank_cli.report.view import QueryRun, QueryView, WindowStats, top_rows, window_stats, window_view
from rearank_cli.rerank.strategies.registry import strategy_of

log = logging.getLogger("rearank")


class PageRequest(Protocol):
    """What the page needs of the report's request (`jobs.report.ReportJob`)."""

    qrels: str
    level: int
    permutations: int
    seed: int
    top_k: int


@dataclass
class RunMeta:
    """Where a run came from, as its manifest (else its journal header) records it."""

    model: str | None = None
    backend: str | None = None
    prompt_hash: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created: str | None = None
    command: str = ""
    score_mode: str | None = None
    #: shards a merged run was joined from (0: not merged)
    shards: int = 0


@dataclass
class RunView:
    """One reranked run on the page."""

    number: int
    name: str
    files: RunFiles
    means: dict[str, float]
    comparison: dict[str, Any]
    missed: int
    stats: WindowStats | None
    prompt: str
    settings: dict[str, Any]
    meta: RunMeta

    @property
    def setting_keys(self) -> list[str]:
        """The settings the runs table shows: the window's, the strategy's own parameters, the decoding."""
        strategy = strategy_of(self.settings.get("strategy"))
        keys = ["strategy", "window", "step", "depth", "passes", "window_schedule", *strategy.params,
                "prompt_params", "max_tokens", "temperature", "top_p", "seed"]
        return [key for key in keys if key in self.settings]


@dataclass
class Page:
    """Everything the template needs."""

    runs: list[RunView]
    baseline: str | None
    baseline_means: dict[str, float]
    measures: list[str]
    main: str
    qrels: str
    n_qrels: int
    level: int
    permutations: int
    seed: int
    queries: list[QueryView]
    texts_source: str | None
    passages: dict[str, dict[str, str]]
    charts: dict[str, str]
    notes: list[str]
    top_k: int
    #: eval's tolerance for a tie, used for the per-query win / tie / loss colours
    tie: float = TIE_EPSILON
    #: judged queries that some reranked run holds (fewer than `n_qrels` for a shard's run)
    n_reranked: int = 0


def assemble_page(job: PageRequest, files: list[RunFiles], report: Any, baseline: str | None,
                  first_stage: Run | None, qrels: Qrels, texts: Texts, notes: list[str]) -> Page:
    """The page of `files` (their journals read, their runs prepared) given eval's `report` on them,
    the baseline and first-stage run, the qrels and the texts; the charts drawn."""
    from rearank_cli.report import charts as _charts

    results = {result.path: result for result in report.results}
    main = report.measures[0]
    base = results.get(baseline) if baseline else None
    start = {qid: {d: r for r, (d, _) in enumerate(hits, 1)} for qid, hits in first_stage.items()} \
        if first_stage is not None else {}
    qids = _query_order(files, first_stage)
    anchors = {qid: f"q-{n}" for n, qid in enumerate(qids)}
    runs, queries = [], []
    for number, run in enumerate(files):
        runs.append(_run_view(number, run, results[run.eval_path], report.measures, report.comparison))
    for qid in qids:
        judged = qrels.get(qid)
        per_run = []
        for view, run in zip(runs, files, strict=True):
            result = results[run.eval_path]
            chain = run.chains.get(qid)
            strategy = strategy_of(view.settings.get("strategy"))
            windows = [window_view(n, r, judged, view.prompt, strategy)
                       for n, r in enumerate(chain.windows, 1)] if chain else []
            value = result.value(main, qid) if judged is not None else None
            base_value = base.value(main, qid) if base is not None and judged is not None else None
            per_run.append(QueryRun(value, base_value, top_rows(run.order.get(qid, []), judged, start.get(qid),
                                                                job.top_k), windows, chain))
        queries.append(QueryView(qid, anchors[qid], texts.topics.get(qid), judged is not None, per_run))
    for number, (view, run) in enumerate(zip(runs, files, strict=True)):
        if run.records is not None:
            views = [w for q in queries for w in q.runs[number].windows]
            view.stats = window_stats(views, run.chains, view.prompt)
    passages = _passage_store(queries, texts, runs)
    page = Page(runs, baseline, {m.name: base.means[m] for m in report.measures} if base else {},
                [m.name for m in report.measures], main.name, job.qrels, len(report.qids), job.level,
                job.permutations, job.seed, queries, texts.source, passages, {}, notes, job.top_k,
                n_reranked=len({qid for run in files for qid in run.order} & set(report.qids)))
    page.charts = _draw(page, _charts)
    return page


def _query_order(files: Sequence[RunFiles], first_stage: Run | None) -> list[str]:
    """Queries in the order of the first-stage run, then any others of the runs (judged or not)."""
    qids = list(first_stage or {})
    for run in files:
        qids += list(run.order)
    return list(dict.fromkeys(qids))


def _run_view(number: int, run: RunFiles, result: Any, measures: Any, comparisons: Any) -> RunView:
    comparison = {m.name: c for m, c in comparisons(result).items()}
    return RunView(number, run.path, run, {m.name: result.means[m] for m in measures}, comparison,
                   len(result.missed), None, run.prompt, _settings(run), _meta(run))


def _settings(run: RunFiles) -> dict[str, Any]:
    """The settings shown: the manifest's (nested `sampling`), else the journal header's."""
    if run.manifest is not None and run.manifest.settings:
        return dict(run.manifest.settings)
    return run.header.settings.to_json() if run.header is not None else {}


def _meta(run: RunFiles) -> RunMeta:
    """Provenance shown for a run: from its manifest, else from its journal header (an interrupted job)."""
    shards = len(run.merge.shards) if run.merge is not None else 0
    manifest, header = run.manifest, run.header
    if manifest is not None:
        source = manifest.provenance
        return RunMeta(manifest.model, _backend_name(manifest.backend), manifest.prompt_hash,
                       {name: {"path": item.path, "sha256": item.sha256} for name, item in source.inputs.items()},
                       dict(source.versions), source.created, " ".join(source.command), manifest.score_mode, shards)
    if header is not None:
        return RunMeta(header.settings.model, header.backend, header.settings.prompt_hash,
                       versions=dict(header.provenance.versions), created=header.provenance.created, shards=shards)
    return RunMeta(shards=shards)


def _backend_name(backend: Any) -> str | None:
    """A backend's description (a dict) as one line."""
    return ", ".join(f"{key} {value}" for key, value in backend.items() if not isinstance(value, dict | list)) or None


def _passage_store(queries: Sequence[QueryView], texts: Texts, runs: Sequence[RunView]) -> dict[str, dict[str, str]]:
    """Per query anchor, the cleaned text of every doc shown (cut to the longest length any window
    used; the page cuts each window's copy to that window's own length, as the model saw it)."""
    longest = max([passage_chars(run.prompt) for run in runs] + [400])
    store: dict[str, dict[str, str]] = {}
    for query in queries:
        docids = {row.docid for qr in query.runs for w in qr.windows for row in w.rows}
        docids |= {row.docid for qr in query.runs for row in qr.top}
        store[query.anchor] = {d: clean_passage(texts.passages[d], longest) for d in sorted(docids)
                               if d in texts.passages}
    return store


def _draw(page: Page, charts: Any) -> dict[str, str]:
    """Every chart of the page as inline SVG."""
    drawn: dict[str, str] = {}
    scatter = []
    for run in page.runs:
        judged = [(q, q.runs[run.number]) for q in page.queries if q.runs[run.number].delta is not None]
        if not judged:
            continue
        drawn[f"delta-{run.number}"] = charts.delta_chart(
            [q.qid for q, _ in judged], [r.delta for _, r in judged], [q.anchor for q, _ in judged], page.main,
            f"delta-{run.number}")
        scatter.append((run.name, [r.base for _, r in judged], [r.value for _, r in judged],
                        [q.anchor for q, _ in judged]))
    if scatter:
        drawn["scatter"] = charts.scatter_chart(scatter, page.main, "scatter")
    traced = [run for run in page.runs if run.stats is not None]
    if traced:
        for key, label in (("prompt_tokens", "prompt tokens"), ("completion_tokens", "completion tokens"),
                           ("latency", "latency (s)")):
            drawn[key] = charts.histogram([(r.name, getattr(r.stats, key)) for r in traced], label, key)
        drawn["tokens_delta"] = charts.tokens_delta_chart(
            [(r.name, r.stats.token_delta) for r in traced if r.stats is not None], "tokens_delta")
    return drawn

