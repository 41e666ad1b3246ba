"""`rearank index` and `rearank retrieve`: the two commands' logic over `rearank_cli.lucene`.

`build_index` validates JSONL corpora and builds an Anserini index with raw documents stored
(`lucene.indexer`); `retrieve` writes Lucene BM25 top-k as Anserini's run (`lucene.searcher`). Both
write a manifest whose provenance comes from `provenance.block`, and leave nothing partial behind on
SIGINT/SIGTERM. The JVM starts in `lucene.java`; a caller whose process never loads vLLM passes
`vllm_guard=False` (the CLI does).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from rearank_cli import provenance
from rearank_cli.errors import InputError, RearankError
from rearank_cli.formats.textio import atomic_output
from rearank_cli.formats.trec import write_run_lines
from rearank_cli.lucene import indexer, java
from rearank_cli.lucene.indexer import BEIR, MULTIFIELD, WHITESPACE, CorpusPlan
from rearank_cli.lucene.prebuilt import load_topics, resolve_index
from rearank_cli.lucene.searcher import Bm25Searcher, anserini_score_text, search_all
from rearank_cli.settings.commands import RetrieveOptions as _O

log = logging.getLogger("rearank")


class Terminated(RearankError):
    """SIGTERM (e.g. SLURM preemption) stopped indexing or retrieval; nothing partial was left behind."""

    exit_code = 128 + 15


@contextlib.contextmanager
def _sigterm_cleans_up() -> Iterator[None]:
    """Within this block SIGTERM raises `Terminated`, so temporary files and folders are removed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame) -> None:
        raise Terminated("terminated by SIGTERM; no output written")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _provenance(kind: str, inputs: Mapping[str, str | None]) -> dict[str, Any]:
    """The common provenance block (`provenance.block`) with the Anserini jar's version added."""
    block = provenance.block(kind, inputs, java.PACKAGES)
    version = java.anserini_version()
    if version is not None:
        block["versions"]["anserini"] = version
    return block


def build_index(corpora: Sequence[str], out_dir: str, threads: int = 1, fields: Sequence[str] = (),
                progress: bool = True, vllm_guard: bool = True, settings: Mapping[str, Any] | None = None,
                config: str | None = None) -> dict[str, Any]:
    """Validate `corpora` and index them into `out_dir` (atomically: built beside it, then renamed).

    Returns the manifest also written to `out_dir/rearank-index.json`. The JVM starts after validation
    (`vllm_guard`: see `lucene.java.start`). The manifest records `settings` (the command's resolved
    settings) and the `config` file's sha256 when given.
    """
    fields = list(dict.fromkeys(fields))
    if any(name != "title" for name in fields):
        raise InputError(f"--fields supports only 'title' (BEIR multifield), got {fields}")
    indexer.prepare_output(out_dir)
    started = time.time()
    plan = indexer.validate_corpora(corpora, progress)
    if fields and plan.collection != BEIR:
        raise InputError("--fields title needs a BEIR corpus (`_id`, `title`, `text`)", corpora[0])
    os.makedirs(os.path.dirname(os.path.abspath(out_dir)), exist_ok=True)
    java.ready(vllm_guard)

    def manifest(counters: dict[str, int]) -> dict[str, Any]:
        summary = _index_summary(plan, corpora, fields, counters, time.time() - started, settings, config)
        indexer.check_counts(summary)
        return summary

    with _sigterm_cleans_up():
        summary = indexer.build(plan, out_dir, threads, fields, progress, manifest)
    log.info("indexed %d documents in %.1f s -> %s", summary["indexed"], summary["seconds"], out_dir)
    return summary


def _index_summary(plan: CorpusPlan, corpora: Sequence[str], fields: Sequence[str], counters: dict[str, int],
                   seconds: float, settings: Mapping[str, Any] | None = None, config: str | None = None,
                   ) -> dict[str, Any]:
    inputs: dict[str, str | None] = {"corpus" if len(corpora) == 1 else f"corpus.{n}": path
                                     for n, path in enumerate(corpora, 1)}
    return {
        **_provenance("index.manifest", {**inputs, "config": config}),
        **({"settings": dict(settings)} if settings is not None else {}),
        "collection": MULTIFIELD if fields else plan.collection,
        "fields": list(fields),
        "documents": plan.docs,
        **counters,
        "corpora": [{"path": os.path.abspath(f.path), "bytes": os.path.getsize(f.path), "documents": f.docs}
                    for f in plan.files],
        "seconds": round(seconds, 3),
    }


def retrieve(index: str, topics: str, output: str = _O.output, k: int = _O.k, k1: float = _O.k1, b: float = _O.b,
             threads: int = 1, remove_query: bool = _O.remove_query, tag: str = _O.tag, progress: bool = True,
             vllm_guard: bool = True, settings: Mapping[str, Any] | None = None, config: str | None = None) -> dict:
    """BM25 top-k for every topic, written as a TREC run (`-` streams to stdout); returns the summary.

    A file output also gets `OUT.manifest.json` (provenance, parameters, counts, timing; `settings`, the
    command's resolved settings, and the `config` file's sha256 when given). `vllm_guard`: see
    `lucene.java.start`.
    """
    from tqdm import tqdm

    if k < 1:
        raise InputError(f"-k must be at least 1, got {k}")
    if not tag or WHITESPACE.search(tag):
        raise InputError(f"--tag must be one word, got {tag!r}")
    if k1 < 0 or not 0 <= b <= 1:
        raise InputError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1} b={b}")
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
        with _sigterm_cleans_up(), atomic_output(output) as out:
            for qid, hits in search_all(searcher, queries, k, threads, bar.update):
                if remove_query:
                    hits = [hit for hit in hits if hit[0] != qid]
                total_hits += len(hits)
                no_hits += not hits
                write_run_lines(out, {qid: hits}, tag, anserini_score_text)
    finally:
        bar.close()
        searcher.close()
    seconds = time.time() - started
    summary = {
        **_provenance("retrieve.manifest", {"index": index_dir, "topics": topics, "config": config}),
        **({"settings": dict(settings)} if settings is not None else {}),
        "index": index, "index_dir": os.path.abspath(index_dir), "topics": topics, "queries": len(queries),
        "hits": total_hits, "queries_without_hits": no_hits, "k": k, "k1": k1, "b": b, "fields": searcher.fields,
        "remove_query": remove_query, "tag": tag, "threads": threads, "seconds": round(seconds, 3),
        "queries_per_second": round(len(queries) / seconds, 1) if seconds > 0 else None,
    }
    if output != "-":
        with atomic_output(output + ".manifest.json", "wb") as handle:
            handle.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    if no_hits:
        log.warning("%d of %d queries matched no document (they are absent from the run)", no_hits, len(queries))
    log.info("retrieved %d hits for %d queries in %.2f s (%.0f queries/s)", total_hits, len(queries), seconds,
             len(queries) / max(seconds, 1e-9))
    return summary
