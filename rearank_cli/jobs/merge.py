"""`rearank merge` as a job: read the shard runs of `rearank rerank --shard I/N`, join them
(`rerank.merge`), write the merged run and its manifest atomically.

The manifest (`records.MergeManifest`) names every shard's run, manifest and journal, so that
`rearank report` finds the windows of every shard from the merged run alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from rearank_cli.errors import InputError
from rearank_cli.formats.textio import atomic_output
from rearank_cli.formats.trec import read_run_lines
from rearank_cli.jobs.context import JobContext
from rearank_cli.provenance import Provenance
from rearank_cli.rerank.journal import read_header
from rearank_cli.rerank.manifests import MergeManifest, RerankManifest, ShardFiles, read_manifest, write_manifest
from rearank_cli.rerank.merge import RunLines, follow_expected, join_shards, merge_manifest
from rearank_cli.settings.rerank import MergeOptions

log = logging.getLogger("rearank")


def run(options: MergeOptions, context: JobContext) -> MergeManifest:
    """`rearank merge`: join `options.shards` into `options.output`; returns the merge manifest (also written
    beside a file output). `context` carries nothing merge uses."""
    del context
    return _locked(options.shards, options.output, options.expect)[1]


def merge_runs(shards: Sequence[str], output: str, expect: str | None = None) -> RunLines:
    """Merge shard runs into `output` (and, unless `-`, `OUTPUT.manifest.json`); returns the merged lines
    by qid. Every shard (and `expect`) is checked line by line as `eval` reads a run (InputError naming the
    file and line: columns, scores, a docid twice in a query, an empty run). Fails loudly (InputError) on a
    query in two shards, and with `expect` on a missing or
    unexpected query or a different doc set; `locks.Busy` (exit 2) when another process writes `output`."""
    return _locked(shards, output, expect)[0]


def _locked(shards: Sequence[str], output: str, expect: str | None) -> tuple[RunLines, MergeManifest]:
    from rearank_cli.locks import exclusive

    with exclusive(output, "the merge output", "-o"):
        return _merge_runs(shards, output, expect)


def _merge_runs(shards: Sequence[str], output: str, expect: str | None) -> tuple[RunLines, MergeManifest]:
    files, manifests = zip(*(shard_files(path) for path in shards), strict=True) if shards else ((), ())
    merged = join_shards([(path, read_run_lines(path, allow_empty=_no_queries(manifest)))
                          for path, manifest in zip(shards, manifests, strict=True)])
    if expect is not None:
        merged = follow_expected(merged, read_run_lines(expect), expect)
    inputs = {f"shard{number}": path for number, path in enumerate(shards)}
    if expect is not None:
        inputs["expect"] = expect
    manifest = merge_manifest(Provenance.now("merge.manifest", inputs), files, manifests, len(merged))
    with atomic_output(output) as out:
        for lines in merged.values():
            out.writelines(line + "\n" for line in lines)
    if output != "-":
        write_manifest(output + ".manifest.json", manifest)
    log.info("merged %d queries from %d shard(s)", len(merged), len(shards))
    return merged, manifest


def _no_queries(manifest: RerankManifest | None) -> bool:
    """Whether a shard's manifest says it had no queries to rerank (a run with fewer queries than shards):
    the one case where an empty shard run is no error."""
    return manifest is not None and manifest.shard is not None and manifest.summary.queries == 0


def shard_files(run: str) -> tuple[ShardFiles, RerankManifest | None]:
    """A shard's run with its manifest (`RUN.manifest.json`, if it is a rerank manifest) and its journal:
    the trace the manifest records, else `RUN.trace.jsonl`, kept when it exists and is a journal of this
    shard."""
    path = run + ".manifest.json"
    manifest = None
    if os.path.isfile(path):
        try:
            found = read_manifest(path)
        except InputError as exc:
            log.warning("%s", exc)
        else:
            manifest = found if isinstance(found, RerankManifest) else None
    candidates = [manifest.trace] if manifest is not None and manifest.trace else []
    trace = next((p for p in [*candidates, run + ".trace.jsonl"] if os.path.isfile(p)), None)
    if trace is not None and not _journal_of(trace, manifest):
        trace = None
    return ShardFiles(run, path if manifest is not None else None, trace), manifest


def _journal_of(trace: str, manifest: RerankManifest | None) -> bool:
    """Whether `trace` is a journal (of the shard that `manifest`, when known, describes)."""
    try:
        header = read_header(trace)
    except InputError as exc:
        log.warning("%s: not recorded as the shard's journal", exc)
        return False
    if manifest is not None and (header.shard, header.settings.model) != (manifest.shard, manifest.model):
        log.warning("%s: a journal of another run (shard %s, model %s), not recorded", trace, header.shard,
                    header.settings.model)
        return False
    return True

