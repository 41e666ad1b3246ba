"""JSON Lines: one object per line, errors naming the line; `write_jsonl` writes them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO, Any

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


def write_jsonl(rows: Iterable[dict[str, Any]], out: IO[bytes]) -> None:
    """One JSON object per line."""
    for row in rows:
        out.write(orjson.dumps(row) + b"\n")
