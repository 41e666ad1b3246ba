"""`rearank index`: JSONL corpora -> a BM25 Lucene index (Anserini, raw documents stored), built beside
its target and renamed into place, with `rearank-index.json` (provenance, counts, timing) inside. SIGINT or
SIGTERM stops it cleanly, leaving nothing behind (`jobs.signals`).

The corpora are validated first (`lucene.indexer`); the JVM starts after that (`lucene.java`; a caller
whose process never loads vLLM passes `vllm_guard=False`, as the CLI does).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from rearank_cli import provenance
from rearank_cli.errors import InputError
from rearank_cli.jobs.context import JobContext
from rearank_cli.jobs.signals import stop_on_signals
from rearank_cli.lucene import indexer, java
from rearank_cli.lucene.indexer import BEIR, MULTIFIELD, CorpusPlan
from rearank_cli.manifests import IndexManifest
from rearank_cli.provenance import Provenance
from rearank_cli.settings.commands import IndexOptions

log = logging.getLogger("rearank")


def lucene_provenance(kind: str, inputs: Mapping[str, str | None]) -> dict[str, Any]:
    """The common provenance block (`provenance.block`) with the Anserini jar's version added."""
    block = provenance.block(kind, inputs, java.PACKAGES)
    version = java.anserini_version()
    if version is not None:
        block["versions"]["anserini"] = version
    return block


def run(options: IndexOptions, context: JobContext) -> IndexManifest:
    """`rearank index`: index `options.corpus` into `options.output`; returns the manifest written inside."""
    from rearank_cli.lucene.threads import available_cpus

    threads = options.threads or available_cpus()
    return IndexManifest.from_json(build_index(options.corpus, options.output, threads, options.fields,
                                               context.progress, context.vllm_guard, options.as_dict(),
                                               context.config_path))


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
        summary = _index_summary(plan, corpora, fields, counters, time.time() - started, settings, config).to_json()
        indexer.check_counts(summary)
        return summary

    with stop_on_signals("no output written"):
        summary = indexer.build(plan, out_dir, threads, fields, progress, manifest)
    log.info("indexed %d documents in %.1f s -> %s", summary["indexed"], summary["seconds"], out_dir)
    return summary


def _index_summary(plan: CorpusPlan, corpora: Sequence[str], fields: Sequence[str], counters: dict[str, int],
                   seconds: float, settings: Mapping[str, Any] | None = None, config: str | None = None,
                   ) -> IndexManifest:
    inputs: dict[str, str | None] = {"corpus" if len(corpora) == 1 else f"corpus.{n}": path
                                     for n, path in enumerate(corpora, 1)}
    return IndexManifest(
        Provenance.from_json(lucene_provenance("index.manifest", {**inputs, "config": config})),
        settings=dict(settings) if settings is not None else None,
        collection=MULTIFIELD if fields else plan.collection,
        fields=tuple(fields),
        documents=plan.docs,
        counters=dict(counters),
        corpora=tuple({"path": os.path.abspath(f.path), "bytes": os.path.getsize(f.path), "documents": f.docs}
                      for f in plan.files),
        seconds=round(seconds, 3),
    )
