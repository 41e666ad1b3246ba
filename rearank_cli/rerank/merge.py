"""`rearank merge`: join the shard outputs of `rearank rerank --shard I/N` into one run.

Lines are copied byte for byte (no re-sorting), so merged shards equal an unsharded run exactly.
A query found in two shards is an error; with `--expect RUN`, every query of RUN must appear exactly
once with the same documents, and the output follows RUN's query order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import orjson

from rearank_cli import provenance
from rearank_cli.errors import InputError, some
from rearank_cli.formats.textio import atomic_output, iter_lines

log = logging.getLogger("rearank")

#: what a manifest's `strategy` block says about how windows were chosen (shards must agree on it)
STRATEGY_KEYS = ("strategy", "tdpart_pivot", "tdpart_top_k", "tdpart_budget")


def read_run_lines(path: str) -> dict[str, list[str]]:
    """A run's lines grouped by qid, in file order (each line checked for 6 columns)."""
    lines: dict[str, list[str]] = {}
    for number, line in iter_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise InputError(f"expected 6 columns 'qid Q0 docid rank score tag', found {len(parts)}", path, number)
        lines.setdefault(parts[0], []).append(line)
    return lines


def merge_runs(shards: Sequence[str], output: str, expect: str | None = None) -> dict[str, list[str]]:
    """Merge shard runs into `output`; returns the merged lines by qid. Fails loudly (InputError) on a
    query in two shards, and with `expect` on a missing or unexpected query or a different doc set."""
    merged: dict[str, list[str]] = {}
    origin: dict[str, str] = {}
    for path in shards:
        for qid, lines in read_run_lines(path).items():
            if qid in merged:
                raise InputError(f"query {qid!r} appears in two shards ({origin[qid]} and {path})", path)
            merged[qid] = lines
            origin[qid] = path
    if expect is not None:
        merged = _check_expected(merged, expect)
    manifest = _merge_manifests(shards, len(merged), expect)
    with atomic_output(output) as out:
        for lines in merged.values():
            out.writelines(line + "\n" for line in lines)
    if output != "-":
        with atomic_output(output + ".manifest.json", "wb") as out:
            out.write(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    log.info("merged %d queries from %d shard(s)", len(merged), len(shards))
    return merged


def _check_expected(merged: dict[str, list[str]], expect: str) -> dict[str, list[str]]:
    expected = read_run_lines(expect)
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


def _merge_manifests(shards: Sequence[str], queries: int, expect: str | None = None) -> dict:
    """A manifest summing the shards' manifests (when they have them); shards reranked with different
    models or prompts are an error."""
    parts = []
    for path in shards:
        try:
            with open(path + ".manifest.json", "rb") as handle:
                parts.append(orjson.loads(handle.read()))
        except (OSError, orjson.JSONDecodeError):
            parts.append(None)
    found = [part for part in parts if part]
    totals: dict[str, int] = {}
    for part in found:
        for key, value in part.get("summary", {}).get("windows", {}).items():
            totals[key] = totals.get(key, 0) + int(value)
    models = sorted({str(part.get("model")) for part in found})
    prompts = sorted({f"{part.get('prompt')} {part.get('prompt_hash')}" for part in found})
    strategies = sorted({_strategy(part) for part in found})
    if len(models) > 1 or len(prompts) > 1 or len(strategies) > 1:
        raise InputError(f"the shards were reranked with different models, prompts or strategies: {models} {prompts} "
                         f"{strategies}")
    inputs = {f"shard{number}": path for number, path in enumerate(shards)}
    if expect is not None:
        inputs["expect"] = expect
    return {
        **provenance.block("merge.manifest", inputs),
        "merged_from": list(shards),
        "queries": queries,
        "shard_manifests": len(found),
        "windows": totals,
        "models": models,
        "prompts": prompts,
        "strategies": strategies,
    }


def _strategy(manifest: dict) -> str:
    """The window strategy and its parameters a shard's manifest records (none recorded: the sliding window)."""
    block = manifest.get("strategy") or {"strategy": "sliding"}
    return " ".join(f"{key}={block[key]}" for key in STRATEGY_KEYS if key in block)
