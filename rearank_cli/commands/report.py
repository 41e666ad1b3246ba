"""`rearank report`: flags only; the page is built by `rearank_cli.report` (jinja2 and matplotlib are
imported only when the command runs)."""

from __future__ import annotations

import typer

_RUNS = typer.Argument(..., metavar="RUN", show_default=False,
                       help="Reranked TREC run(s), shown side by side. A run that an interrupted job never wrote "
                       "is rebuilt from its journal (RUN.trace.jsonl).")
_TRACES = typer.Option(None, "--trace", show_default=False,
                       help="Journal of a run (repeatable, in the order of the runs; with one RUN, every journal "
                       "of it, e.g. of its shards) [default: RUN.trace.jsonl when present; for a merged run, "
                       "the shards' journals its merge manifest records].")
_MEASURES = typer.Option(None, "-m", "--measure", show_default=False,
                         help="Measure (repeatable, eval's names); the first is the main one of the per-query "
                         "charts. [default: eval's defaults, nDCG@10 first]")


def report(
    runs: list[str] = _RUNS,
    qrels: str = typer.Option(..., "--qrels", help="Qrels file (graded labels)."),
    baseline: str | None = typer.Option(
        None, "--baseline", help="First-stage run to compare with [default: the run recorded in RUN.manifest.json]."),
    traces: list[str] | None = _TRACES,
    topics: str | None = typer.Option(None, "--topics", help="Query texts [default: from the manifest]."),
    corpus: str | None = typer.Option(None, "--corpus", help="Passage texts: JSONL(.gz) corpus or Lucene index."),
    candidates: str | None = typer.Option(None, "--candidates",
                                          help="rank_llm/RankGPT candidates JSON (query and passage texts)."),
    measures: list[str] | None = _MEASURES,
    level: int = typer.Option(1, "-l", "--level", help="trec_eval -l, as in `rearank eval`."),
    top_k: int = typer.Option(10, "--top-k", help="Final docs listed per query."),
    permutations: int = typer.Option(10_000, "--permutations", help="Randomization test permutations."),
    seed: int = typer.Option(0, "--seed", help="Randomization test seed."),
    output: str = typer.Option("report.html", "-o", "--output", help="The HTML file (written atomically)."),
) -> None:
    """One self-contained HTML page of what the reranker did: measures, per-query effect, windows,
    the model's reasoning next to the qrels labels."""
    from rearank_cli.jobs.report import ReportJob, make_report

    make_report(ReportJob(list(runs), qrels, baseline, list(traces or []), topics, corpus, candidates,
                          list(measures) if measures else None, level, top_k, output, permutations, seed))
