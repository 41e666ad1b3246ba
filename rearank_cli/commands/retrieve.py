"""`rearank index` and `rearank retrieve`: flags from `settings.commands`; the jobs are `rearank_cli.jobs.index`
and `rearank_cli.jobs.retrieve` (imported lazily, so `rearank --help` never starts the JVM)."""

from __future__ import annotations

from rearank_cli.commands.options import command
from rearank_cli.settings.commands import IndexOptions, RetrieveOptions
from rearank_cli.settings.files import ConfigFile


@command(IndexOptions)
def index(options: IndexOptions, config: ConfigFile | None = None) -> None:
    """Build a BM25 Lucene index (Anserini, raw docs stored) from JSONL corpora."""
    from rearank_cli.jobs.index import build_index
    from rearank_cli.lucene.threads import available_cpus

    # this process never loads vLLM: no tvm_ffi import before the JVM starts
    build_index(options.corpus, options.output, options.threads or available_cpus(), options.fields,
                vllm_guard=False, settings=options.as_dict(), config=config.path if config else None)


@command(RetrieveOptions)
def retrieve(options: RetrieveOptions, config: ConfigFile | None = None) -> None:
    """BM25 top-k (pyserini/Anserini, k1=0.9 b=0.4 by default) for every topic, as a TREC run."""
    from rearank_cli.jobs.retrieve import retrieve as run_retrieve
    from rearank_cli.lucene.threads import available_cpus

    o = options
    # this process never loads vLLM: no tvm_ffi import before the JVM starts
    run_retrieve(o.index, o.topics, o.output, k=o.k, k1=o.k1, b=o.b, threads=o.threads or available_cpus(),
                 remove_query=o.remove_query, tag=o.tag, vllm_guard=False, settings=o.as_dict(),
                 config=config.path if config else None)
