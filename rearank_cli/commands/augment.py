"""`rearank augment`: REARANK RL training samples from any run + graded qrels (spec section 6)."""

from __future__ import annotations

from enum import StrEnum

import typer


class PromptName(StrEnum):
    """Prompt choices (prompts.PROMPTS)."""

    rearank = "rearank"
    rankgpt = "rankgpt"


class OutputFormat(StrEnum):
    """Output layouts."""

    jsonl = "jsonl"
    parquet = "parquet"


def augment(
    run: str = typer.Argument(..., help="First-stage TREC run ('-' = stdin): defines queries and doc order."),
    qrels: str = typer.Option(..., "--qrels", help="Graded qrels (qid 0 docid rel)."),
    topics: str | None = typer.Option(None, "--topics", help="Query texts (TSV or BEIR queries.jsonl)."),
    corpus: str | None = typer.Option(None, "--corpus", help="Doc texts: JSONL(.gz) corpus or Lucene index."),
    candidates: str | None = typer.Option(
        None, "--candidates", help="rank_llm/RankGPT candidates JSON: query and doc texts (instead of both)."
    ),
    samples_per_query: int = typer.Option(50, "--samples-per-query", min=1, help="Distinct subsets per query."),
    window: int = typer.Option(20, "--window", min=1, help="Docs per sample."),
    depth: int = typer.Option(100, "--depth", min=1, help="Sample from the run's top DEPTH docs."),
    min_init_ndcg: float = typer.Option(
        0.1, "--min-init-ndcg", min=0.0, max=1.0, help="Drop samples whose initial nDCG@10 is below this."
    ),
    prompt: PromptName = typer.Option(  # noqa: B008
        "rearank", "--prompt", help="Prompt of the `prompt` field."
    ),
    seed: int = typer.Option(42, "--seed", help="Random seed (per-query seeds derive from it and the qid)."),
    fmt: OutputFormat = typer.Option(  # noqa: B008
        "jsonl", "--format", help="jsonl (TRL: prompt + extra columns) or parquet (VeRL layout)."
    ),
    skip_short: bool = typer.Option(
        False, "--skip-short", help="Skip queries with fewer candidates than --window (default: use them)."
    ),
    skip_missing: bool = typer.Option(
        False, "--skip-missing", help="Drop candidate docs that have no text instead of failing."
    ),
    output: str = typer.Option("-", "-o", "--output", help="Output file ('-' = stdout; .gz compresses)."),
    summary: str | None = typer.Option(
        None, "--summary", help="Summary JSON path (default: OUTPUT.summary.json when OUTPUT is a file)."
    ),
) -> None:
    """Sample REARANK training windows (initial and ideal nDCG@10 each) from a run and graded qrels."""
    from rearank_cli.jobs.augment import augment as build
    from rearank_cli.sampling import Settings

    settings = Settings(
        samples_per_query=samples_per_query, window=window, depth=depth, min_init_ndcg=min_init_ndcg,
        prompt=prompt.value, seed=seed, skip_short=skip_short, skip_missing=skip_missing,
    )
    if summary is None and output != "-":
        summary = output + ".summary.json"
    build(
        run, qrels, output, settings, topics_path=topics, corpus_path=corpus, candidates_path=candidates,
        fmt=fmt.value, summary_path=summary,
    )
