"""`rearank index` and `rearank retrieve`: flags only; the jobs are `rearank_cli.jobs.index` and `.retrieve`
(imported lazily, so `rearank --help` never starts the JVM)."""

from __future__ import annotations

import typer

_CORPORA = typer.Argument(..., help='Corpus JSONL(.gz): pyserini {"id","contents"} or BEIR {"_id","title","text"}.',
                          show_default=False)
_FIELDS = typer.Option([], "--fields", help="BEIR multifield: also index `title` as its own field (as Anserini's "
                                           "multifield regressions); default is BEIR flat.")


def index(
    corpus: list[str] = _CORPORA,
    output: str = typer.Option(..., "--output", "-o", help="Index directory to create (replaced if it is an index)."),
    threads: int | None = typer.Option(None, "--threads", min=1,
                                       help="Indexing threads (one per corpus file) [default: CPUs available]."),
    fields: list[str] = _FIELDS,
) -> None:
    """Build a BM25 Lucene index (Anserini, raw docs stored) from JSONL corpora."""
    from rearank_cli.jobs.index import build_index
    from rearank_cli.lucene.threads import available_cpus

    # this process never loads vLLM: no tvm_ffi import before the JVM starts
    build_index(corpus, output, threads or available_cpus(), fields, vllm_guard=False)


def retrieve(
    index: str = typer.Option(..., "--index", help="Lucene index directory, or a pyserini prebuilt index name."),
    topics: str = typer.Option(..., "--topics",
                               help="Topics: qid<TAB>query TSV, BEIR queries.jsonl (gzip ok, `-` = stdin), "
                                    "or a pyserini topic set name."),
    k: int = typer.Option(100, "-k", "--hits", min=1, help="Hits per query."),
    k1: float = typer.Option(0.9, "--k1", help="BM25 k1."),
    b: float = typer.Option(0.4, "--b", help="BM25 b."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Search threads [default: CPUs available]."),
    remove_query: bool = typer.Option(False, "--remove-query", help="Drop hits whose docid equals the qid (BEIR)."),
    tag: str = typer.Option("bm25", "--tag", help="Run tag (6th column)."),
    output: str = typer.Option("-", "--output", "-o", help="Output TREC run (`-` = stdout); a file also gets "
                                                            "OUT.manifest.json."),
) -> None:
    """BM25 top-k (pyserini/Anserini, k1=0.9 b=0.4 by default) for every topic, as a TREC run."""
    from rearank_cli.jobs.retrieve import retrieve as run_retrieve
    from rearank_cli.lucene.threads import available_cpus

    # this process never loads vLLM: no tvm_ffi import before the JVM starts
    run_retrieve(index, topics, output, k=k, k1=k1, b=b, threads=threads or available_cpus(),
                 remove_query=remove_query, tag=tag, vllm_guard=False)
