"""A spool: byte records kept in an unlinked temporary file, found again by key.

A job that must see every query before it starts (to check the inputs, to count the windows left)
but should hold only the queries in flight writes each query's hits, and each passage text it will
need, to a spool, and reads them back by key when their query starts. Memory holds the key index
(a key and two integers per record), never the records. The file has no name once opened, so the
kernel removes it however the process ends.
"""

from __future__ import annotations

import os
import tempfile


class Spool:
    """Append-only byte records by key in an anonymous temporary file in `folder` (default: TMPDIR)."""

    def __init__(self, folder: str | None = None) -> None:
        handle = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 - closed by close()
        self._handle = handle
        self._fd = handle.fileno()
        self._end = 0
        self._index: dict[str, tuple[int, int]] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def add(self, key: str, data: bytes) -> bool:
        """Store `data` under `key` unless the key is there already (the first one wins); True if stored."""
        if key in self._index:
            return False
        written = 0
        while written < len(data):
            written += os.pwrite(self._fd, data[written:], self._end + written)
        self._index[key] = (self._end, len(data))
        self._end += len(data)
        return True

    def get(self, key: str) -> bytes:
        """The record stored under `key` (KeyError if none)."""
        offset, size = self._index[key]
        data = os.pread(self._fd, size, offset)
        while len(data) < size:
            data += os.pread(self._fd, size - len(data), offset + len(data))
        return data

    def close(self) -> None:
        """Drop the file (the kernel frees its space)."""
        self._handle.close()
        self._index.clear()
