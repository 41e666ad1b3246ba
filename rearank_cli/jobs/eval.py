"""`rearank eval`: files -> Evaluator -> comparisons -> one report, written atomically (SIGINT or SIGTERM
stops it cleanly, leaving no partial output: `jobs.signals`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from rearank_cli import provenance
from rearank_cli.errors import InputError, display_path
from rearank_cli.evaluation.evaluator import Evaluator, RunResult, load_qrels
from rearank_cli.evaluation.measures import parse_measures, trec_measures
from rearank_cli.evaluation.render import EvalReport, render
from rearank_cli.evaluation.significance import compare
from rearank_cli.jobs.context import JobContext
from rearank_cli.jobs.signals import stop_on_signals
from rearank_cli.settings.commands import DEFAULT_MEASURES, EvalOptions
from rearank_cli.settings.commands import EvalOptions as _O

log = logging.getLogger("rearank")


def run(options: EvalOptions, context: JobContext) -> EvalReport:
    """`rearank eval`: evaluate `options.runs`, compare them with the baseline, write the report atomically."""
    return _run_eval(options, context, options.as_dict())


def run_eval(runs: Sequence[str], qrels_path: str, measure_names: Sequence[str] | None = None, *,
             level: int = _O.level, per_query: bool = False, baseline: str | None = None, fmt: str = _O.fmt,
             output: str = _O.output, permutations: int = _O.permutations, seed: int = _O.seed,
             max_docs: int | None = None,
             exclude: str | None = None, complete: bool = True, settings: dict[str, Any] | None = None,
             config: str | None = None) -> EvalReport:
    """`rearank eval`: evaluate runs, compare them with a baseline, write the report atomically.

    `max_docs` is trec_eval's -M; `exclude` a file of (qid, docid) pairs dropped from every run;
    `complete` is trec_eval's -c, which only trec_eval's layout (`fmt="trec"`) can turn off: the table
    and json always average over every qrels query; `settings` (the command's resolved settings) and
    `config` (its --config file) go to the JSON layout.
    """
    options = EvalOptions(runs=list(runs), qrels=qrels_path, measures=list(measure_names) if measure_names else None,
                          level=level, per_query=per_query, baseline=baseline, fmt=fmt, output=output,
                          permutations=permutations, seed=seed, max_docs=max_docs, exclude=exclude,
                          complete=complete)
    return _run_eval(options, JobContext.of(config), settings)


def _run_eval(options: EvalOptions, context: JobContext, settings: dict[str, Any] | None) -> EvalReport:
    """What `run` and `run_eval` do; `settings` (None: none) go to the JSON layout."""
    from rearank_cli.formats.textio import atomic_output

    o = options
    fmt = o.fmt
    _O.check_value("fmt", fmt)
    with stop_on_signals("no output written"):
        report = evaluate_runs(o.runs, o.qrels, o.measures, level=o.level, baseline=o.baseline,
                               permutations=o.permutations, seed=o.seed, max_docs=o.max_docs, exclude=o.exclude,
                               trec_layout=fmt == "trec", complete=o.complete or fmt != "trec")
        report.settings, report.config = settings, context.config_path
        text = render(report, fmt, o.per_query, eval_provenance(report) if fmt == "json" else None)
        with atomic_output(o.output) as out:
            out.write(text)
    return report


def eval_provenance(report: EvalReport) -> dict[str, Any]:
    """The provenance block of `--format json`: its schema, the inputs with their sha256, the versions."""
    inputs = {"qrels": report.qrels_path, "exclude": report.exclude, "config": report.config,
              **{f"run{number}": result.path for number, result in enumerate(report.results, 1)}}
    return provenance.block("eval.json", inputs, ("pytrec-eval-terrier",))


def evaluate_runs(runs: Sequence[str], qrels_path: str, measure_names: Sequence[str] | None = None, *,
                  level: int = _O.level, baseline: str | None = None, permutations: int = _O.permutations,
                  seed: int = _O.seed, max_docs: int | None = None, exclude: str | None = None,
                  trec_layout: bool = False, complete: bool = True) -> EvalReport:
    """What `rearank eval` computes, without writing it: per-query values, means (-c unless `complete`
    is False) and, with a `baseline`, the comparisons (`trec_layout`: refuse measures trec_eval's layout
    cannot show)."""
    from rearank_cli.formats.exclude import read_exclusions

    if permutations < 1:
        raise InputError("--permutations must be at least 1")
    measures = parse_measures(measure_names or DEFAULT_MEASURES)
    if trec_layout:
        trec_measures(measures)  # refuse what trec_eval's layout cannot show before any work
    paths = _run_order(runs, baseline)
    qrels = load_qrels(qrels_path, level)
    pairs = read_exclusions(exclude) if exclude is not None else None
    evaluator = Evaluator(qrels, measures, level, max_docs=max_docs, exclude=pairs, complete=complete)
    results = [evaluator.evaluate_file(path) for path in paths]
    for result in results:
        warn_about(result, len(qrels), complete)
    base = results[paths.index(baseline)] if baseline is not None else None
    comparisons = {result.path: compare(result, base, evaluator.qids, permutations=permutations, seed=seed)
                   for result in results if base is not None and result is not base}
    return EvalReport(qrels_path, level, evaluator.qids, measures, results, base, permutations, seed, max_docs,
                      comparisons, exclude)


def _run_order(runs: Sequence[str], baseline: str | None) -> list[str]:
    """Row order: the baseline first when it is not among the runs, then the runs, without repeats."""
    paths = list(dict.fromkeys(runs))
    if baseline is not None and baseline not in paths:
        paths.insert(0, baseline)
    if not paths:
        raise InputError("no run given")
    return paths


def warn_about(result: RunResult, n_qrels: int, complete: bool = True) -> None:
    """stderr notes on what a run misses or what trec_eval silently does with it (`complete`: -c)."""
    name = display_path(result.path)
    if result.excluded:
        log.info("%s: %d hits dropped by --exclude", name, result.excluded)
    if result.missed:
        log.warning("%s: %d of %d qrels queries are not in the run (%s)", name, len(result.missed), n_qrels,
                    "each counts 0 in the means" if complete else "left out of the means: no -c")
    if result.extra_queries:
        log.warning("%s: %d run queries are not in the qrels (ignored)", name, result.extra_queries)
    if result.tied_hits:
        log.warning(
            "%s: %d hits in %d queries tie on score with another hit of their query; trec_eval orders "
            "ties by docid (descending), not by rank, which can undo a reranker's order", name,
            result.tied_hits, result.tied_queries,
        )
