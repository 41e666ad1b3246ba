"""Candidate lists in the RankGPT / rank_llm JSON format.

`[{"query": str, "hits": [{"content", "qid", "docid", "rank", "score"}, ...]}, ...]`: query and
passage text inline, so a reranker needs no topics file or corpus. `iter_candidates` parses the list
one entry at a time (memory: one entry, however big the file); `read_candidates` holds it all.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

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


@dataclass
class Entry:
    """One query of a candidates file: qid, query text, hits in first-stage order, and each hit's text."""

    qid: str
    query: str
    hits: list[tuple[str, float]]
    texts: dict[str, str]


def read_candidates(path: str) -> Candidates:
    """Read a rank_llm/RankGPT candidates JSON (gzip accepted) whole.

    Each query's hits are a first-stage ranking: score descending, equal scores in list order. A docid
    listed under several queries keeps the first text the file gives it.
    """
    result = Candidates()
    for entry in iter_candidates(path):
        result.run[entry.qid] = entry.hits
        result.topics[entry.qid] = entry.query
        for docid, text in entry.texts.items():
            result.texts.setdefault(docid, text)
    return result


def iter_candidates(path: str) -> Iterator[Entry]:
    """Stream a candidates JSON entry by entry, with `read_candidates`' checks (a qid in two entries, a
    docid twice in one, missing fields, a file with no candidates: InputError naming the entry)."""
    seen: set[str] = set()
    for index, item in enumerate(_json_list_items(path)):
        if not isinstance(item, dict) or "query" not in item or "hits" not in item:
            raise InputError(f"entry {index}: expected fields 'query' and 'hits'", path)
        entry = _entry(item, index, path)
        if entry is None:
            continue
        if entry.qid in seen:
            raise InputError(f"entry {index}: qid {entry.qid!r} appears twice", path)
        seen.add(entry.qid)
        yield entry
    if not seen:
        raise InputError("no candidates found", path)


def _entry(item: dict[str, Any], index: int, path: str) -> Entry | None:
    """One entry's hits checked and ordered (None for an entry without hits)."""
    hits: list[tuple[str, float]] = []
    texts: dict[str, str] = {}
    qid = None
    for position, hit in enumerate(item["hits"]):
        qid_hit, docid, content, score = _hit_fields(hit, path, f"entry {index} hit {position}")
        if qid is None:
            qid = qid_hit
        elif qid_hit != qid:
            raise InputError(f"entry {index} hit {position}: qid {qid_hit!r} differs from {qid!r}", path)
        if docid in texts:
            raise InputError(f"entry {index}: docid {docid!r} appears twice in query {qid!r}", path)
        hits.append((docid, score))
        texts[docid] = content
    if qid is None:
        return None
    return Entry(qid, str(item["query"]), first_stage_order(hits), texts)


_READ = 1 << 20


def _json_list_items(path: str) -> Iterator[Any]:
    """The items of the JSON list a file holds, parsed one at a time from a growing text buffer."""
    decoder = json.JSONDecoder()
    with open_binary(path) as handle:
        buffer = _Buffer(handle, path)
        if buffer.next_char() != "[":
            if buffer.next_char() == "":
                raise InputError("expected a non-empty JSON list of {query, hits}", path)
            buffer.fail_if_invalid(decoder)
            raise InputError("expected a non-empty JSON list of {query, hits}", path)
        buffer.pos += 1
        first = True
        while True:
            char = buffer.next_char()
            if char == "]":
                buffer.pos += 1
                if buffer.next_char() != "":
                    raise InputError("invalid JSON (extra data after the list)", path)
                if first:
                    raise InputError("expected a non-empty JSON list of {query, hits}", path)
                return
            if not first:
                if char != ",":
                    raise InputError(f"invalid JSON (expected ',' or ']' at character {buffer.where()})", path)
                buffer.pos += 1
                buffer.next_char()
            yield buffer.decode(decoder)
            first = False


class _Buffer:
    """Decoded text of a binary stream, read in blocks as the parser needs more."""

    def __init__(self, handle: IO[bytes], path: str) -> None:
        self.handle, self.path = handle, path
        self.text, self.pos, self.consumed = "", 0, 0
        self.eof = False
        self.utf8 = codecs.getincrementaldecoder("utf-8")()

    def more(self, size: int = _READ) -> bool:
        """Read another block (dropping what was parsed); False at the end of the stream."""
        if self.eof:
            return False
        try:
            block = self.handle.read(size)
            text = self.utf8.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            raise InputError(f"not valid UTF-8 text ({exc.reason})", self.path) from None
        except (OSError, EOFError) as exc:
            raise InputError(f"cannot read ({exc})", self.path) from None
        self.eof = not block
        self.consumed += self.pos
        self.text = self.text[self.pos:] + text
        self.pos = 0
        return True

    def next_char(self) -> str:
        """The next non-blank character (not consumed); '' at the end."""
        while True:
            text, pos = self.text, self.pos
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
            self.pos = pos
            if pos < len(text):
                return text[pos]
            if not self.more():
                return ""

    def where(self) -> int:
        return self.consumed + self.pos

    def decode(self, decoder: json.JSONDecoder) -> Any:
        """The JSON value starting at `pos`, reading more text until it is whole."""
        size = _READ
        while True:
            try:
                value, end = decoder.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                if not self.more(size):
                    raise InputError(f"invalid JSON ({exc.msg} at character {self.consumed + exc.pos})",
                                     self.path) from None
                size = min(size * 2, 1 << 26)  # a long entry: fewer re-parses
                continue
            self.pos = end
            return value

    def fail_if_invalid(self, decoder: json.JSONDecoder) -> None:
        """InputError 'invalid JSON' when the text at `pos` is not JSON at all."""
        self.decode(decoder)


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
