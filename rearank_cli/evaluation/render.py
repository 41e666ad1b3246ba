"""The three layouts of `rearank eval`: a table, JSON (unrounded, with provenance) and trec_eval's own.

Each takes an `EvalReport` (the results, the comparisons with the baseline, the settings) and returns
the text; writing it is the caller's. Nothing heavy is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rearank_cli.errors import display_path
from rearank_cli.evaluation.evaluator import RunResult
from rearank_cli.evaluation.measures import SUMMARY_ONLY, Measure, trec_measures
from rearank_cli.evaluation.significance import Comparison
from rearank_cli.settings.commands import EVAL_FORMATS

FORMATS = EVAL_FORMATS


@dataclass
class EvalReport:
    """Everything `rearank eval` prints: results per run, in row order, comparisons and the settings."""

    qrels_path: str
    level: int
    qids: list[str]
    measures: list[Measure]
    results: list[RunResult]
    baseline: RunResult | None
    permutations: int
    seed: int
    max_docs: int | None = None
    #: {run path: {measure: comparison with the baseline}}, for every run but the baseline
    comparisons: dict[str, dict[Measure, Comparison]] = field(default_factory=dict)
    exclude: str | None = None
    #: the command's resolved settings and its --config file, recorded by the JSON layout
    settings: dict[str, Any] | None = None
    config: str | None = None

    def comparison(self, result: RunResult) -> dict[Measure, Comparison]:
        """The comparisons of one run with the baseline (empty for the baseline or without one)."""
        return self.comparisons.get(result.path, {})


def render(report: EvalReport, fmt: str, per_query: bool, provenance: Mapping[str, Any] | None = None) -> str:
    """The report in one of FORMATS; a JSON document starts with `provenance` (the job's block)."""
    if fmt == "json":
        return render_json(report, per_query, provenance)
    if fmt == "trec":
        return render_trec(report, per_query)
    return render_table(report, per_query)


def format_value(measure: Measure, value: float | str) -> str:
    """A value as trec_eval prints it: counts as integers, text quoted, the rest with 4 decimals."""
    if isinstance(value, str):
        return f"'{value}'"
    if measure.count:
        return str(round(value))
    return f"{value:.4f}"


# ---------------------------------------------------------------- table


def _table(rows: list[list[str]], left: int = 1) -> list[str]:
    """Left-align the first `left` columns (names), right-align the others (numbers)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i < left else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths,
            strict=True))).rstrip() for row in rows]


def _marks(comparison: Comparison | None, alpha: float = 0.05) -> str:
    if comparison is None:
        return "  "
    return ("*" if comparison.p_ttest < alpha else " ") + ("+" if comparison.p_randomization < alpha else " ")


#: the most measures the table of means shows as columns (a row per run); more are rows (a column per run)
TABLE_MEASURES = 8


def render_table(report: EvalReport, per_query: bool) -> str:
    """A row per run, a column per measure (4 decimals, as trec_eval prints), and comparisons; with more than
    TABLE_MEASURES measures (e.g. `-m all_trec`), a row per measure and a column per run."""
    compared = report.baseline is not None
    numeric = [m for m in report.measures if not m.text]
    header = ["run", *(m.name + ("  " if compared else "") for m in numeric), "missed"]
    rows = [header]
    for result in report.results:
        name = display_path(result.path) + (" (baseline)" if result is report.baseline else "")
        cells = [format_value(m, result.means[m]) + (_marks(report.comparison(result).get(m)) if compared else "")
                 for m in numeric]
        rows.append([name, *cells, str(len(result.missed))])
    lines = _table(rows)
    if len(numeric) > TABLE_MEASURES:
        columns = [["measure", *row[1:-1], "missed"] if i == 0 else row for i, row in enumerate(rows)]
        lines = _table([list(cells) for cells in zip(*columns, strict=True)])
    if compared:
        lines += ["", *_comparison_lines(report)]
    if per_query:
        lines += ["", *_per_query_lines(report)]
    return "\n".join(lines) + "\n"


def _comparison_lines(report: EvalReport) -> list[str]:
    base = report.baseline
    assert base is not None
    lines = [
        f"* p < 0.05, paired two-sided t-test; + p < 0.05, paired randomization test ({report.permutations} "
        f"permutations, seed {report.seed}); both against {display_path(base.path)} over the "
        f"{len(report.qids)} qrels queries (a query missing from a run counts 0)",
        "",
    ]
    rows = [["run", "measure", "baseline", "run", "delta", "win/tie/loss", "p(t-test)", "p(random)"]]
    for result in report.results:
        for measure, c in report.comparison(result).items():
            rows.append([display_path(result.path), measure.name, f"{base.means[measure]:.4f}",
                         f"{result.means[measure]:.4f}", f"{c.delta:+.4f}", f"{c.win}/{c.tie}/{c.loss}",
                         _p(c.p_ttest), _p(c.p_randomization)])
    return lines + (_table(rows, left=2) if len(rows) > 1 else [])


def _p(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _per_query_lines(report: EvalReport) -> list[str]:
    base = report.baseline
    header = ["qid", "measure"]
    for result in report.results:
        header.append(display_path(result.path))
        if base is not None and result is not base:
            header.append("delta")
    rows = [header]
    for qid in report.qids:
        for measure in report.measures:
            if measure.family == "runid":
                continue
            row = [qid, measure.name]
            for result in report.results:
                got = result.per_query[measure].get(qid)
                row.append("-" if got is None else format_value(measure, got))
                if base is not None and result is not base:
                    delta = None if measure.text else _delta(result, base, measure, qid)
                    row.append("" if measure.text else "-" if delta is None else f"{delta:+.4f}")
            rows.append(row)
    return ["per query (- = query not in the run; it counts 0 in means and deltas)", *_table(rows, left=2)]




def _delta(result: RunResult, base: RunResult, measure: Measure, qid: str) -> float | None:
    mine, theirs = result.value(measure, qid), base.value(measure, qid)
    if isinstance(mine, str) or isinstance(theirs, str) or mine is None or theirs is None:
        return None  # a text measure, or Judged@k on a query the run lacks
    return mine - theirs


# ---------------------------------------------------------------- trec_eval's layout


def _trec_line(name: str, qid: str, value: str) -> str:
    return f"{name:<22}\t{qid}\t{value}"


def render_trec(report: EvalReport, per_query: bool) -> str:
    """trec_eval's layout (`-q` per-query lines first with --per-query).

    With several runs, each block starts with a `runid` line naming the file (unless `runid`, the
    run's own tag as trec_eval prints it, is one of the measures).
    """
    measures = trec_measures(report.measures)
    shown = [m for m in measures if m.family not in SUMMARY_ONLY]
    runid = any(m.family == "runid" for m in measures)
    lines: list[str] = []
    for result in report.results:
        if len(report.results) > 1 and not runid:
            lines.append(_trec_line("runid", "all", display_path(result.path)))
        if per_query:
            for qid in report.qids:
                lines += [_trec_line(m.key, qid, format_value(m, result.per_query[m][qid]))
                          for m in shown if qid in result.per_query[m]]
        for m in measures:
            if m.family == "runid":
                lines.append(_trec_line("runid", "all", result.tag or ""))
            elif not m.text:
                lines.append(_trec_line(m.key, "all", format_value(m, result.means[m])))
    return "\n".join(lines) + "\n"


def render_json(report: EvalReport, per_query: bool, provenance: Mapping[str, Any] | None = None) -> str:
    """The same numbers, unrounded, with the settings that produced them, after `provenance` (`jobs.eval`
    passes the block of `schema` rearank.eval/N, rearank's version, the command, the time, the inputs with
    their sha256, the versions)."""
    import orjson

    from rearank_cli.manifests import EvalJson

    doc = {
        **(provenance or {}),
        **({"settings": report.settings} if report.settings is not None else {}),
        "qrels": report.qrels_path,
        "queries": len(report.qids),
        "relevance_level": report.level,
        "aggregation": "trec_eval -c: mean over all qrels queries, a missing query counts 0 "
                       "(Judged@k: mean over the queries the run answers)",
        "measures": [{"name": m.name, "trec_eval": m.key, "depth": m.depth} for m in report.measures],
        "max_docs": report.max_docs,
        "baseline": report.baseline.path if report.baseline else None,
        "significance": {"ttest": "paired two-sided", "randomization": "paired sign flips",
                         "permutations": report.permutations, "seed": report.seed} if report.baseline else None,
        "runs": [_run_json(result, report, per_query) for result in report.results],
    }
    if provenance is None:  # no record: the numbers alone
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
    return EvalJson.from_json(doc).dump().decode()


def _run_json(result: RunResult, report: EvalReport, per_query: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "run": result.path,
        "runid": result.tag,
        "means": {m.name: result.means[m] for m in report.measures if not m.text},
        "missed_queries": result.missed,
        "extra_queries": result.extra_queries,
        "hits": result.hits,
        "tied_hits": result.tied_hits,
        "tied_queries": result.tied_queries,
        "excluded_hits": result.excluded,
    }
    comparison = report.comparison(result)
    if comparison:
        doc["vs_baseline"] = {
            m.name: {"delta": c.delta, "win": c.win, "tie": c.tie, "loss": c.loss, "p_ttest": c.p_ttest,
                     "p_randomization": c.p_randomization}
            for m, c in comparison.items()
        }
    if per_query:
        doc["per_query"] = {qid: {m.name: result.per_query[m].get(qid) for m in report.measures
                                  if m.family != "runid"} for qid in report.qids}
    return doc


