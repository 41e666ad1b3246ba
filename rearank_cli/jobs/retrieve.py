"""`rearank retrieve`: BM25 top-k for every topic (`lucene.searcher`, Anserini's scores), written as a TREC
run, with `OUT.manifest.json` (provenance, parameters, counts, timing) beside a file output. Nothing
partial is left behind on SIGINT or SIGTERM (`jobs.signals`). A caller whose process never loads vLLM
passes `vllm_guard=False` (the CLI does; see `lucene.java.start`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

from rearank_cli.errors import InputError
from rearank_cli.formats.textio import atomic_output
from rearank_cli.formats.trec import write_run_lines
from rearank_cli.jobs.context import JobContext
from rearank_cli.jobs.index import lucene_provenance
from rearank_cli.jobs.signals import stop_on_signals
from rearank_cli.lucene import java
from rearank_cli.lucene.indexer import WHITESPACE
from rearank_cli.lucene.prebuilt import load_topics, resolve_index
from rearank_cli.lucene.searcher import Bm25Searcher, anserini_score_text, check_bm25, search_all
from rearank_cli.lucene.threads import available_cpus
from rearank_cli.manifests import RetrieveManifest
from rearank_cli.provenance import Provenance
from rearank_cli.settings.commands import RetrieveOptions
from rearank_cli.settings.commands import RetrieveOptions as _O

log = logging.getLogger("rearank")


def run(options: RetrieveOptions, context: JobContext) -> RetrieveManifest:
    """`rearank retrieve`: BM25 top-k for every topic of `options`, written as a TREC run; returns the summary
    (also `OUT.manifest.json` beside a file output)."""
    return _retrieve(options, context, options.as_dict())


def retrieve(index: str, topics: str, output: str = _O.output, k: int = _O.k, k1: float = _O.k1, b: float = _O.b,
             threads: int = 1, remove_query: bool = _O.remove_query, tag: str = _O.tag, progress: bool = True,
             vllm_guard: bool = True, settings: Mapping[str, Any] | None = None, config: str | None = None,
             ) -> dict[str, Any]:
    """BM25 top-k for every topic, written as a TREC run (`-` streams to stdout); returns the summary.

    A file output also gets `OUT.manifest.json` (provenance, parameters, counts, timing; `settings`, the
    command's resolved settings, and the `config` file's sha256 when given). `vllm_guard`: see
    `lucene.java.start`.
    """
    options = RetrieveOptions(index=index, topics=topics, output=output, k=k, k1=k1, b=b, threads=threads,
                              remove_query=remove_query, tag=tag)
    return _retrieve(options, JobContext.of(config, progress=progress, vllm_guard=vllm_guard), settings).to_json()


def _retrieve(options: RetrieveOptions, context: JobContext, settings: Mapping[str, Any] | None) -> RetrieveManifest:
    """What `run` and `retrieve` do; `settings` (None: none) go to the manifest."""
    from tqdm import tqdm

    o, vllm_guard, progress, config = options, context.vllm_guard, context.progress, context.config_path
    index, topics, output, k, k1, b, tag, remove_query = o.index, o.topics, o.output, o.k, o.k1, o.b, o.tag, \
        o.remove_query
    threads = o.threads or available_cpus()
    check_bm25(k, k1, b)
    if not tag or WHITESPACE.search(tag):
        raise InputError(f"--tag must be one word, got {tag!r}")
    query_map = load_topics(topics, vllm_guard)
    index_dir = resolve_index(index, vllm_guard)
    java.ready(vllm_guard)
    searcher = Bm25Searcher(index_dir, k1, b)
    queries = list(query_map.items())
    log.info("BM25 (k1=%g, b=%g, fields %s) over %d docs: %d queries, k=%d, %d thread(s)", k1, b,
             "+".join(searcher.fields), searcher.num_docs, len(queries), k, threads)
    started = time.time()
    total_hits = no_hits = 0
    bar = tqdm(total=len(queries), desc="bm25", unit="q", file=sys.stderr, disable=None if progress else True)
    try:
        note = "no output written" if output != "-" else "the run on stdout is incomplete"
        with stop_on_signals(note), atomic_output(output) as out:
            for qid, hits in search_all(searcher, queries, k, threads, bar.update, remove_query):
                total_hits += len(hits)
                no_hits += not hits
                write_run_lines(out, {qid: hits}, tag, anserini_score_text)
    finally:
        bar.close()
        searcher.close()
    seconds = time.time() - started
    summary = RetrieveManifest(
        Provenance.from_json(lucene_provenance("retrieve.manifest",
                                               {"index": index_dir, "topics": topics, "config": config})),
        settings=dict(settings) if settings is not None else None,
        index=index, index_dir=os.path.abspath(index_dir), topics=topics, queries=len(queries),
        hits=total_hits, queries_without_hits=no_hits, k=k, k1=k1, b=b, fields=dict(searcher.fields),
        remove_query=remove_query, tag=tag, threads=threads, seconds=round(seconds, 3),
        queries_per_second=round(len(queries) / seconds, 1) if seconds > 0 else None,
    )
    if output != "-":
        with atomic_output(output + ".manifest.json", "wb") as handle:
            handle.write(summary.dump())
    if no_hits:
        log.warning("%d of %d queries matched no document (they are absent from the run)", no_hits, len(queries))
    log.info("retrieved %d hits for %d queries in %.2f s (%.0f queries/s)", total_hits, len(queries), seconds,
             len(queries) / max(seconds, 1e-9))
    return summary
