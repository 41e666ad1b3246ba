"""Corpora as JSONL: pyserini `{"id","contents"}` or BEIR `{"_id","title","text"}`, gzip accepted."""

from __future__ import annotations

from collections.abc import Collection, Iterator

import orjson

from rearank_cli.errors import InputError
from rearank_cli.formats.jsonl import parse_json_object
from rearank_cli.formats.textio import atomic_output, iter_lines


def doc_text(title: str | None, text: str) -> str:
    """The document text the reranker sees (spec section 2): titled docs get `Title: ... Content: ...`."""
    if title:
        return "Title: " + title + " " + "Content: " + text
    return text


def parse_doc(line: str, path: str, number: int | None) -> tuple[str, str]:
    """One corpus line as `(docid, text)`, or an InputError naming the line."""
    record = parse_json_object(line, path, number)
    docid = record.get("id", record.get("_id", record.get("docid")))
    if docid is None or str(docid) == "":
        raise InputError('document has no id ("id" or "_id")', path, number)
    if "contents" in record:
        text = record["contents"]
    elif "text" in record:
        text = doc_text(record.get("title"), record["text"] or "")
    else:
        raise InputError(f'document {docid!r} has no text ("contents" or "text")', path, number)
    if not isinstance(text, str):
        raise InputError(f"document {docid!r}: text is not a string", path, number)
    return str(docid), text


def iter_corpus(path: str) -> Iterator[tuple[str, str]]:
    """Stream `(docid, text)` pairs; duplicate ids and an empty corpus are errors."""
    seen: set[str] = set()
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        docid, text = parse_doc(line, path, number)
        if docid in seen:
            raise InputError(f"duplicate document id {docid!r}", path, number)
        seen.add(docid)
        yield docid, text
    if not seen:
        raise InputError("corpus is empty", path)


def load_texts(path: str, wanted: Collection[str] | None = None) -> dict[str, str]:
    """Texts of the documents in `wanted` (all when None), streaming the corpus once.

    Only the wanted documents are kept in memory, so reranking a run over a large corpus
    holds about 100 passages per query, never the whole collection.
    """
    return {docid: text for docid, text in iter_corpus(path) if wanted is None or docid in wanted}


def write_corpus(path: str, docs: dict[str, str]) -> None:
    """Write `{docid: text}` as pyserini JSONL (`id`, `contents`) atomically."""
    with atomic_output(path, "wb") as out:
        for docid, text in docs.items():
            out.write(orjson.dumps({"id": docid, "contents": text}) + b"\n")
