"""(qid, docid) pairs to drop from runs before scoring: BRIGHT's `excluded_ids` protocol.

Two layouts, told apart by the first non-blank line: a two-column `qid docid` file (spaces or tabs,
as anserini-tools' `exclude.bright-*.txt`), or BRIGHT's original examples JSONL, one object per
query with `id` and `excluded_ids` (a list, or a Python list written as a string; `N/A` means none).
"""

from __future__ import annotations

import ast
from typing import Any

from rearank_cli.errors import InputError
from rearank_cli.formats.jsonl import parse_json_object
from rearank_cli.formats.textio import iter_lines

Exclusions = dict[str, set[str]]


def read_exclusions(path: str) -> Exclusions:
    """Read an exclusion file (either layout, gzip ok) as `{qid: {docid, ...}}`; errors name the line."""
    pairs: Exclusions = {}
    jsonl: bool | None = None
    for number, line in iter_lines(path):
        text = line.strip()
        if not text:
            continue
        if jsonl is None:
            jsonl = text.startswith("{")
        if jsonl:
            qid, docids = _example_ids(parse_json_object(text, path, number), path, number)
            pairs.setdefault(qid, set()).update(docids)
            continue
        parts = text.split()
        if len(parts) != 2:
            raise InputError(f"expected 2 columns 'qid docid' (or BRIGHT examples JSONL), found {len(parts)}",
                             path, number)
        pairs.setdefault(parts[0], set()).add(parts[1])
    if jsonl is None:
        raise InputError("exclusion file is empty", path)
    return pairs


def _example_ids(record: dict[str, Any], path: str, number: int) -> tuple[str, list[str]]:
    """(`id`, `excluded_ids` without `N/A`) of one BRIGHT example."""
    if "id" not in record or "excluded_ids" not in record:
        raise InputError("a BRIGHT example needs the fields 'id' and 'excluded_ids'", path, number)
    ids = record["excluded_ids"]
    if isinstance(ids, str):
        try:
            ids = ast.literal_eval(ids)
        except (ValueError, SyntaxError):
            raise InputError(f"excluded_ids {ids[:60]!r} is not a list", path, number) from None
    if not isinstance(ids, list) or not all(isinstance(d, str) for d in ids):
        raise InputError("excluded_ids must be a list of docid strings", path, number)
    return str(record["id"]), [d for d in ids if d != "N/A"]
