"""Joining the shards of `rearank rerank --shard I/N` (pure: the files are read and written by
`jobs.merge`).

Each shard's lines are kept byte for byte, grouped by query in file order, so merged shards equal an
unsharded run exactly. A query found in two shards is an error; with an expected run, every query of it
must appear exactly once with the same documents, and the merge follows its query order.
"""

from __future__ import annotations

from collections.abc import Sequence

from rearank_cli.errors import InputError, some
from rearank_cli.provenance import Provenance
from rearank_cli.rerank.manifests import MergeManifest, RerankManifest, ShardFiles

#: a run's lines by qid, in file order
RunLines = dict[str, list[str]]


def join_shards(shards: Sequence[tuple[str, RunLines]]) -> RunLines:
    """The lines of every `(path, lines)` shard in the order given; InputError on a query in two shards."""
    merged: RunLines = {}
    origin: dict[str, str] = {}
    for path, lines in shards:
        for qid, rows in lines.items():
            if qid in merged:
                raise InputError(f"query {qid!r} appears in two shards ({origin[qid]} and {path})", path)
            merged[qid] = rows
            origin[qid] = path
    return merged


def follow_expected(merged: RunLines, expected: RunLines, expect: str) -> RunLines:
    """`merged` in the query order of `expected` (the run at `expect`); InputError when a query is missing
    or unexpected, or holds other documents."""
    missing = [qid for qid in expected if qid not in merged]
    extra = [qid for qid in merged if qid not in expected]
    if missing:
        raise InputError(f"{len(missing)} of {len(expected)} expected queries are missing from the shards: "
                         f"{some(missing)}", expect)
    if extra:
        raise InputError(f"{len(extra)} queries of the shards are not in the expected run: {some(extra)}", expect)
    for qid, lines in expected.items():
        want = sorted(line.split()[2] for line in lines)
        got = sorted(line.split()[2] for line in merged[qid])
        if want != got:
            raise InputError(f"query {qid!r}: the shards hold {len(got)} docs, the expected run {len(want)} "
                             "(or other docids)", expect)
    return {qid: merged[qid] for qid in expected}


def merge_manifest(provenance: Provenance, shards: Sequence[ShardFiles], manifests: Sequence[RerankManifest | None],
                   queries: int) -> MergeManifest:
    """The merge manifest: the shards' window counts summed over the manifests found, the models and
    prompts they name (InputError when the shards were reranked with different ones), every shard's files."""
    found = [manifest for manifest in manifests if manifest is not None]
    windows = None
    for manifest in found:
        windows = manifest.summary.windows if windows is None else windows + manifest.summary.windows
    models = sorted({str(manifest.model) for manifest in found})
    prompts = sorted({f"{manifest.prompt} {manifest.prompt_hash}" for manifest in found})
    if len(models) > 1 or len(prompts) > 1:
        raise InputError(f"the shards were reranked with different models or prompts: {models} {prompts}")
    return MergeManifest(provenance, tuple(shard.run for shard in shards), queries, len(found), windows,
                         tuple(models), tuple(prompts), tuple(shards))

