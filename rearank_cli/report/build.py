"""`rearank report`: gather runs, journals, manifests, qrels and texts into one page.

The numbers come from `rearank eval` itself (`evaluate_runs`, the same measures, means, win/tie/loss and
significance tests), evaluated on the very files the page is about; a run whose job was interrupted is
rebuilt from its journal first (the finished windows on the first-stage order) and evaluated as such.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rearank_cli.errors import InputError
from rearank_cli.evaluation import TIE_EPSILON, evaluate_runs
from rearank_cli.formats import Qrels, Run, read_qrels, read_run, write_run
from rearank_cli.prompts import PASSAGE_CHARS, clean_passage
from rearank_cli.report import inputs as found
from rearank_cli.report.view import QueryRun, QueryView, WindowStats, top_rows, window_stats, window_view
from rearank_cli.settings.commands import ReportOptions as _O

log = logging.getLogger("rearank")


@dataclass
class ReportJob:
    """What `rearank report` was asked for."""

    runs: list[str]
    qrels: str
    baseline: str | None = None
    traces: list[str] = field(default_factory=list)
    topics: str | None = None
    corpus: str | None = None
    candidates: str | None = None
    measures: list[str] | None = None
    level: int = _O.level
    top_k: int = _O.top_k
    output: str = _O.output
    permutations: int = _O.permutations
    seed: int = _O.seed

    def check(self) -> None:
        """Usage errors that need no file access."""
        if not self.runs:
            raise InputError("give at least one reranked RUN")
        if len(set(self.runs)) != len(self.runs):
            raise InputError("a RUN is given twice")
        if len(self.traces) > len(self.runs):
            raise InputError(f"{len(self.traces)} --trace for {len(self.runs)} run(s): give at most one per run, "
                             "in the order of the runs")
        if self.candidates is not None and (self.topics is not None or self.corpus is not None):
            raise InputError("--candidates carries query and passage texts; do not combine it with --topics/--corpus")
        if self.top_k < 1:
            raise InputError("--top-k must be at least 1")
        if self.output == "-":
            raise InputError("the report is one HTML file: give -o FILE.html")


@dataclass
class RunView:
    """One reranked run on the page."""

    number: int
    name: str
    files: found.RunFiles
    means: dict[str, float]
    comparison: dict[str, Any]
    missed: int
    stats: WindowStats | None
    prompt: str
    settings: dict[str, Any]
    meta: dict[str, Any]


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


def build_report(job: ReportJob) -> Page:
    """Read everything `job` names and return the page data (charts included)."""
    job.check()
    files = [found.locate(path, job.traces[i] if i < len(job.traces) else None) for i, path in enumerate(job.runs)]
    for run in files:
        run.journal = found.read_journal(run.trace) if run.trace else None
    with tempfile.TemporaryDirectory(prefix="rearank-report-") as scratch:
        baseline = (job.baseline or found.manifest_input(files, "run") or found.journal_run(files)
                    or _candidates_baseline(files, scratch))
        first_stage = found.read_first_stage(baseline)
        notes = _prepare_runs(files, first_stage, scratch)
        report = evaluate_runs([run.eval_path for run in files], job.qrels, job.measures, level=job.level,
                               baseline=baseline, permutations=job.permutations, seed=job.seed)
        qrels = read_qrels(job.qrels)
        texts = _texts(job, files, first_stage)
        return _page(job, files, report, baseline, first_stage, qrels, texts, notes)


def _candidates_baseline(files: Sequence[found.RunFiles], scratch: str) -> str | None:
    candidates = found.manifest_input(files, "candidates")
    return found.first_stage_from_candidates(candidates, scratch) if candidates else None


def _prepare_runs(files: Sequence[found.RunFiles], first_stage: Run | None, scratch: str) -> list[str]:
    """Replay each journal on the first-stage run; rebuild the runs whose job never wrote them."""
    notes = []
    for number, run in enumerate(files):
        if run.journal is not None:
            run.chains = found.window_chains(run.journal, first_stage)
        if os.path.isfile(run.path):
            run.eval_path = run.path
        else:
            if first_stage is None:
                raise InputError("run not found; rebuilding it from its journal needs the first-stage run "
                                 "(--baseline)", run.path)
            run.eval_path = os.path.join(scratch, f"rebuilt-{number}.trec")
            write_run(run.eval_path, found.rebuild_run(run.chains, first_stage), "rebuilt")
            run.rebuilt = True
            done = sum(len(c.windows) for c in run.chains.values())
            notes.append(f"{run.path} does not exist (an interrupted job): rebuilt from the {done} finished "
                         f"window(s) of {run.trace} on the first-stage run; queries without a finished window "
                         "keep their first-stage order.")
        run.order = {qid: [d for d, _ in hits] for qid, hits in read_run(run.eval_path).items()}
        run.mismatched = [qid for qid, chain in run.chains.items()
                          if chain.order is not None and chain.finished
                          and run.order.get(qid, [])[: len(chain.order)] != chain.order]
        if run.mismatched:
            notes.append(f"{run.path}: the journal's windows do not produce the run's order for "
                         f"{len(run.mismatched)} quer{'y' if len(run.mismatched) == 1 else 'ies'} "
                         f"({', '.join(run.mismatched[:5])}): another first-stage run or another trace?")
    return notes


def _texts(job: ReportJob, files: Sequence[found.RunFiles], first_stage: Run | None) -> found.Texts:
    wanted = {d for run in files for chain in run.chains.values() for r in chain.windows for d in r["docids"]}
    wanted |= {d for run in files for order in run.order.values() for d in order[: job.top_k]}
    if job.candidates or job.topics or job.corpus:
        return found.load_texts(job.topics, job.corpus, job.candidates, wanted)
    candidates = found.manifest_input(files, "candidates")
    if candidates:
        return found.load_texts(None, None, candidates, wanted)
    topics, corpus = found.manifest_input(files, "topics"), found.manifest_input(files, "corpus")
    return found.load_texts(topics, corpus, None, wanted)


def _page(job: ReportJob, files: list[found.RunFiles], report, baseline: str | None, first_stage: Run | None,
          qrels: Qrels, texts: found.Texts, notes: list[str]) -> Page:
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
            tdpart = view.settings.get("strategy") == "tdpart"
            windows = [window_view(n, r, judged, view.prompt, tdpart)
                       for n, r in enumerate(chain.windows, 1)] if chain else []
            value = result.value(main, qid) if judged is not None else None
            base_value = base.value(main, qid) if base is not None and judged is not None else None
            per_run.append(QueryRun(value, base_value, top_rows(run.order.get(qid, []), judged, start.get(qid),
                                                                job.top_k), windows, chain))
        queries.append(QueryView(qid, anchors[qid], texts.topics.get(qid), judged is not None, per_run))
    for number, (view, run) in enumerate(zip(runs, files, strict=True)):
        if run.journal is not None:
            views = [w for q in queries for w in q.runs[number].windows]
            view.stats = window_stats(views, run.chains, view.prompt)
    passages = _passage_store(queries, texts, runs)
    page = Page(runs, baseline, {m.name: base.means[m] for m in report.measures} if base else {},
                [m.name for m in report.measures], main.name, job.qrels, len(report.qids), job.level,
                job.permutations, job.seed, queries, texts.source, passages, {}, notes, job.top_k)
    page.charts = _draw(page, _charts)
    return page


def _query_order(files: Sequence[found.RunFiles], first_stage: Run | None) -> list[str]:
    """Queries in the order of the first-stage run, then any others of the runs (judged or not)."""
    qids = list(first_stage or {})
    for run in files:
        qids += list(run.order)
    return list(dict.fromkeys(qids))


def _run_view(number: int, run: found.RunFiles, result, measures, comparisons) -> RunView:
    manifest = run.manifest or {}
    header = run.journal.header if run.journal is not None else {}
    settings = manifest.get("settings") or header.get("settings") or {}
    prompt = manifest.get("prompt") or (run.journal.prompt if run.journal is not None else None) or "rearank"
    meta = {
        "model": manifest.get("model") or (header.get("settings") or {}).get("model"),
        "backend": _backend_name(manifest.get("backend") or header.get("backend")),
        "prompt_hash": manifest.get("prompt_hash") or (header.get("settings") or {}).get("prompt_hash"),
        "inputs": manifest.get("inputs") or {},
        "versions": manifest.get("versions") or header.get("versions") or {},
        "created": manifest.get("created") or header.get("created"),
        "command": " ".join(manifest.get("command") or []),
        "score_mode": manifest.get("score_mode"),
    }
    comparison = {m.name: c for m, c in comparisons(result).items()}
    return RunView(number, run.path, run, {m.name: result.means[m] for m in measures}, comparison,
                   len(result.missed), None, str(prompt), settings, meta)


def _backend_name(backend: Any) -> str | None:
    """A backend as one line: the manifest's description (a dict) or the journal header's name."""
    if isinstance(backend, dict):
        return ", ".join(f"{key} {value}" for key, value in backend.items() if not isinstance(value, dict | list))
    return None if backend is None else str(backend)


def _passage_store(queries: Sequence[QueryView], texts: found.Texts, runs: Sequence[RunView]) -> dict:
    """Per query anchor, the cleaned text of every doc shown (cut to the longest length any window
    used; the page cuts each window's copy to that window's own length, as the model saw it)."""
    longest = max([PASSAGE_CHARS.get(run.prompt, 400) for run in runs] + [400])
    store: dict[str, dict[str, str]] = {}
    for query in queries:
        docids = {row.docid for qr in query.runs for w in qr.windows for row in w.rows}
        docids |= {row.docid for qr in query.runs for row in qr.top}
        store[query.anchor] = {d: clean_passage(texts.passages[d], longest) for d in sorted(docids)
                               if d in texts.passages}
    return store


def _draw(page: Page, charts) -> dict[str, str]:
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

