"""`rearank eval`: flags only; the logic lives in `rearank_cli.evaluation` (imported lazily)."""

from __future__ import annotations

import typer

_RUNS = typer.Argument(..., metavar="RUN", show_default=False,
                       help="TREC run files (`-` = stdin; gzip is detected).")
_MEASURES = typer.Option(
    None, "-m", "--measure", show_default=False,
    help="Measure (repeatable): any trec_eval 9.0.x measure with its parameters as trec_eval takes them "
    "(ndcg_cut.10, map, recall.100, P.5,10, ndcg.1=3,2=9, iprec_at_recall..25, utility.2,-1,0,0, ...), "
    "the nicknames all_trec, official and set, or short forms (nDCG@10, MAP, MAP@1000, R@100, P@10, "
    "MRR@10, Judged@10). [default: nDCG@10 nDCG@5 MAP@1000 R@100 Judged@10]",
)


def evaluate(
    runs: list[str] = _RUNS,
    qrels: str = typer.Option(..., "--qrels", help="Qrels file: TREC (qid 0 docid rel; graded labels) or BEIR "
                              "TSV (query-id corpus-id score), one layout per file."),
    measures: list[str] | None = _MEASURES,
    level: int = typer.Option(1, "-l", "--level",
                              help="trec_eval -l: lowest label that counts as relevant for binary measures "
                              "(MAP, recall, P, MRR); DL convention: 2. nDCG always uses the graded labels."),
    per_query: bool = typer.Option(False, "-q", "--per-query", help="Also print per-query values (and deltas)."),
    max_docs: int | None = typer.Option(None, "-M", "--max-docs", show_default=False,
                                        help="trec_eval -M: only the top N docs of each query (trec_eval's "
                                        "order) count, for every measure."),
    exclude: str | None = typer.Option(
        None, "--exclude", show_default=False,
        help="(qid, docid) pairs dropped from every run before scoring (BRIGHT's excluded_ids): a two-column "
        "'qid docid' file or BRIGHT's examples JSONL (fields id, excluded_ids). The count goes to stderr."),
    complete: bool = typer.Option(False, "-c", help="trec_eval -c, for --format trec: a query missing from a run "
                                  "counts as an empty ranking in the means; without it trec_eval's layout "
                                  "averages over the queries the run answers, as trec_eval does. The table "
                                  "and json always aggregate as trec_eval -c."),
    baseline: str | None = typer.Option(
        None, "--baseline", help="Run to compare the others with: win/tie/loss, paired t-test and randomization "
        "test per measure (* and + mark p < 0.05)."),
    fmt: str = typer.Option("table", "--format", help="table | json | trec (trec_eval's own layout)."),
    output: str = typer.Option("-", "-o", "--output", help="Output file (`-` = stdout), written atomically."),
    permutations: int = typer.Option(10_000, "--permutations", help="Randomization test permutations."),
    seed: int = typer.Option(0, "--seed", help="Randomization test seed."),
    jobs: int = typer.Option(1, "--jobs", help="Accepted and ignored, so older command lines still run: "
                             "runs are evaluated in one process (a second one gained too little to keep)."),
) -> None:
    """Evaluate runs as `trec_eval -c` does (pytrec_eval) and compare them with a baseline."""
    from rearank_cli.evaluation import run_eval

    del jobs  # one process
    run_eval(runs, qrels, measures, level=level, per_query=per_query, baseline=baseline, fmt=fmt,
             output=output, permutations=permutations, seed=seed, max_docs=max_docs, exclude=exclude,
             complete=complete)
