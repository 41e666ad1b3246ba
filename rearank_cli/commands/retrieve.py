"""`rearank index` and `rearank retrieve`: flags from `settings.commands`; the jobs are `rearank_cli.jobs.index`
and `rearank_cli.jobs.retrieve` (imported lazily, so `rearank --help` never starts the JVM)."""

from __future__ import annotations

from rearank_cli.commands.options import command
from rearank_cli.settings.commands import IndexOptions, RetrieveOptions
from rearank_cli.settings.files import ConfigFile


@command(IndexOptions)
def index(options: IndexOptions, config: ConfigFile | None = None) -> None:
    """Build a BM25 Lucene index (Anserini, raw docs stored) from JSONL corpora."""
    from rearank_cli.jobs.context import JobContext
    from rearank_cli.jobs.index import run

    # this process never loads vLLM: no tvm_ffi import before the JVM starts
    run(options, JobContext(config=config, vllm_guard=False))


@command(RetrieveOptions)
def retrieve(options: RetrieveOptions, config: ConfigFile | None = None) -> None:
    """BM25 top-k (pyserini/Anserini, k1=0.9 b=0.4 by default) for every topic, as a TREC run."""
    from rearank_cli.jobs.context import JobContext
    from rearank_cli.jobs.retrieve import run

    # this process never loads vLLM: no tvm_ffi import before the JVM starts
    run(options, JobContext(config=config, vllm_guard=False))
