"""JSON Lines: one object per line, errors naming the line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from rearank_cli.errors import InputError
from rearank_cli.formats.textio import iter_lines


def parse_json_object(line: str | bytes, path: str, number: int | None) -> dict[str, Any]:
    """One JSONL line (text or UTF-8 bytes) as a dict, or an InputError naming the file and line."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"invalid JSON ({exc})", path, number) from None
    if not isinstance(record, dict):
        raise InputError("expected a JSON object", path, number)
    return record


def iter_jsonl(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line_number, object)` for each non-blank line of a JSONL(.gz) input."""
    for number, line in iter_lines(path):
        if line.strip():
            yield number, parse_json_object(line, path, number)
