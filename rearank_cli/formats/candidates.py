"""Candidate lists in the RankGPT / rank_llm JSON format.

`[{"query": str, "hits": [{"content", "qid", "docid", "rank", "score"}, ...]}, ...]`: query and
passage text inline, so a reranker needs no topics file or corpus.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from rearank_cli.errors import InputError
from rearank_cli.formats.textio import atomic_output, open_binary
from rearank_cli.formats.trec import Run, first_stage_order, parse_score


@dataclass
class Candidates:
    """A run with its query and passage texts."""

    run: Run = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)


def _hit_fields(hit: object, path: str, where: str) -> tuple[str, str, str, float]:
    if not isinstance(hit, dict):
        raise InputError(f"{where}: expected a JSON object", path)
    missing = [key for key in ("qid", "docid", "content", "score") if key not in hit]
    if missing:
        raise InputError(f"{where}: missing field(s) {', '.join(missing)}", path)
    score = parse_score(str(hit["score"]), path, None)
    return str(hit["qid"]), str(hit["docid"]), str(hit["content"]), score


def read_candidates(path: str) -> Candidates:
    """Read a rank_llm/RankGPT candidates JSON (gzip accepted).

    Each query's hits are a first-stage ranking: score descending, equal scores in list order.
    """
    with open_binary(path) as handle:
        try:
            data = orjson.loads(handle.read())
        except orjson.JSONDecodeError as exc:
            raise InputError(f"invalid JSON ({exc})", path) from None
    if not isinstance(data, list) or not data:
        raise InputError("expected a non-empty JSON list of {query, hits}", path)
    result = Candidates()
    for index, item in enumerate(data):
        if not isinstance(item, dict) or "query" not in item or "hits" not in item:
            raise InputError(f"entry {index}: expected fields 'query' and 'hits'", path)
        hits: list[tuple[str, float]] = []
        qid = None
        for position, hit in enumerate(item["hits"]):
            qid_hit, docid, content, score = _hit_fields(hit, path, f"entry {index} hit {position}")
            if qid is None:
                qid = qid_hit
                if qid in result.run:
                    raise InputError(f"entry {index}: qid {qid!r} appears twice", path)
            elif qid_hit != qid:
                raise InputError(f"entry {index} hit {position}: qid {qid_hit!r} differs from {qid!r}", path)
            if any(docid == seen for seen, _ in hits):
                raise InputError(f"entry {index}: docid {docid!r} appears twice in query {qid!r}", path)
            hits.append((docid, score))
            result.texts.setdefault(docid, content)
        if qid is None:
            continue
        result.run[qid] = first_stage_order(hits)
        result.topics[qid] = str(item["query"])
    if not result.run:
        raise InputError("no candidates found", path)
    return result


def write_candidates(path: str, candidates: Candidates) -> None:
    """Write candidates as rank_llm JSON atomically (ranks 1..n in run order)."""
    data = [
        {
            "query": candidates.topics[qid],
            "hits": [
                {"content": candidates.texts[docid], "qid": qid, "docid": docid, "rank": rank, "score": score}
                for rank, (docid, score) in enumerate(hits, 1)
            ],
        }
        for qid, hits in candidates.run.items()
    ]
    with atomic_output(path, "wb") as out:
        out.write(orjson.dumps(data))
