"""Topics: TSV `qid<TAB>text` (TREC DL, Anserini) or BEIR `queries.jsonl` (`_id`, `text`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from rearank_cli.errors import InputError
from rearank_cli.formats.jsonl import parse_json_object
from rearank_cli.formats.textio import atomic_output, iter_lines

log = logging.getLogger("rearank")


def _parse_tsv(line: str, path: str, number: int) -> tuple[str, str]:
    if "\t" not in line:
        raise InputError("expected 'qid<TAB>query'", path, number)
    qid, text = line.split("\t", 1)
    return qid.strip(), text


def _parse_json(line: str, path: str, number: int) -> tuple[str, str]:
    record = parse_json_object(line, path, number)
    qid = record.get("_id", record.get("qid", record.get("id")))
    text = record.get("text", record.get("query"))
    if qid is None or text is None:
        raise InputError('expected fields "_id" and "text"', path, number)
    return str(qid), str(text)


def read_topics(path: str) -> dict[str, str]:
    """Read topics as `{qid: query}`. Empty queries are skipped with a warning; duplicate qids fail."""
    topics: dict[str, str] = {}
    skipped = 0
    parse = None
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        if parse is None:
            parse = _parse_json if line.lstrip().startswith("{") else _parse_tsv
        qid, text = parse(line, path, number)
        if not qid:
            raise InputError("empty qid", path, number)
        if qid in topics:
            raise InputError(f"qid {qid!r} appears twice", path, number)
        if not text.strip():
            skipped += 1
            continue
        topics[qid] = text.strip()
    if skipped:
        log.warning("%s: skipped %d topic(s) with an empty query", path, skipped)
    if not topics:
        raise InputError("no topics found", path)
    return topics


def write_topics(path: str, topics: Mapping[str, str]) -> None:
    """Write topics as TSV atomically."""
    with atomic_output(path) as out:
        for qid, text in topics.items():
            if "\t" in text or "\n" in text:
                text = " ".join(text.split())
            out.write(f"{qid}\t{text}\n")
