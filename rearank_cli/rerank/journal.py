"""The rerank journal: an append-only JSONL trace of finished windows, for `--resume`, `merge` and the report.

The first line is the header (`records.JournalHeader`: its `schema`, the provenance block, the settings of
which `RESUME_KEYS` must match on resume); every later line is one `records.WindowRecord`, written with one
flush as soon as its window is done. `read_journal` is the one reader: a torn last line (a killed run) is
left out, and `Journal` (the writer) cuts it off before appending on `--resume`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import orjson

from rearank_cli.errors import InputError, RearankError
from rearank_cli.formats.jsonl import parse_json_object
from rearank_cli.rerank.plan import Window
from rearank_cli.rerank.records import RESUME_KEYS, JournalHeader, WindowRecord

__all__ = ["RESUME_KEYS", "Journal", "JournalFile", "WindowRecord", "earlier_records", "read_header", "read_journal"]

log = logging.getLogger("rearank")


@dataclass
class JournalFile:
    """A journal as read back: its header and its window records in file order. `torn` is the byte offset
    of a torn last line (left by a killed run, not read), None when the file ends with a whole line."""

    path: str
    header: JournalHeader
    records: list[WindowRecord]
    torn: int | None = None


def read_journal(path: str, *, outputs: bool = True, failed: bool = True,
                 check: Callable[[JournalHeader], None] | None = None,
                 each: Callable[[WindowRecord], None] | None = None) -> JournalFile:
    """Read the journal at `path` in one stream; an unreadable file, a line that is not JSON, a first line
    that is no header or a malformed window record is an InputError naming the file and line, except a
    torn last line, which is left out. Lines of other types are skipped. `outputs=False` drops the model
    outputs and `failed=False` the failed windows (what `--resume` needs); `check` sees the header before
    any record is read; with `each`, every record goes to it as it is read instead of into `records`."""
    header: JournalHeader | None = None
    records: list[WindowRecord] = []
    offset = 0
    torn = None
    try:
        handle = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot read the trace ({exc.strerror})", path) from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith(b"\n"):
                torn = offset if line.strip() else None
                break
            offset += len(line)
            if not line.strip():
                continue
            data = parse_json_object(line, path, number)
            if header is None:
                header = _header(data, path, number)
                if check is not None:
                    check(header)
            elif data.get("type") == "window" and (failed or not data.get("failed")):
                if not outputs:
                    data.pop("output", None)
                (each or records.append)(_window(data, path, number))
    if header is None:
        raise InputError("not a rearank journal (no header line)", path, 1)
    return JournalFile(path, header, records, torn)


def read_header(path: str) -> JournalHeader:
    """The header of the journal at `path` (InputError naming it when it has none)."""
    try:
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    return _header(parse_json_object(line, path, number), path, number)
    except OSError as exc:
        raise InputError(f"cannot read the trace ({exc.strerror})", path) from None
    raise InputError("not a rearank journal (no header line)", path, 1)


def _header(data: dict[str, Any], path: str, number: int) -> JournalHeader:
    try:
        return JournalHeader.from_json(data)
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc), path, number) from None


def _window(data: dict[str, Any], path: str, number: int) -> WindowRecord:
    try:
        return WindowRecord.from_json(data)
    except KeyError as exc:
        raise InputError(f"window record without {exc}", path, number) from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"invalid window record ({exc})", path, number) from None


def docids_digest(docids: Sequence[str]) -> bytes:
    """A 16-byte digest of a window's docids, what the replay index compares instead of the docids."""
    return hashlib.blake2b("\n".join(docids).encode(), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Replay:
    """A journaled window as the replay index keeps it: a digest of its docids, its permutation and the
    counters of its record (the model output is not kept); `record(window)` rebuilds the record."""

    docids: bytes
    permutation: bytes
    counts: tuple[Any, ...]

    def record(self, window: Window) -> WindowRecord:
        """The WindowRecord of `window` (whose docids matched this entry)."""
        flags, prompt_tokens, completion_tokens, latency, finish, backend_flags, max_chars, stamp = self.counts
        return WindowRecord(window.qid, window.pass_, window.index, window.start, window.end, tuple(window.docids),
                            tuple(array("H", self.permutation)), None, flags, prompt_tokens, completion_tokens,
                            latency, finish, backend_flags, max_chars, False, None, stamp)


class _Shared:
    """One copy of the strings and flag dicts that many records repeat (qids, parser flags)."""

    def __init__(self) -> None:
        self.values: dict[Any, Any] = {}

    def one(self, value: Any) -> Any:
        key = orjson.dumps(dict(value), option=orjson.OPT_SORT_KEYS) if isinstance(value, Mapping) else value
        return self.values.setdefault(key, value)

    def key(self, record: WindowRecord) -> tuple[str, int, int, int]:
        return (self.one(record.qid), record.pass_, record.start, record.end)

    def compact(self, record: WindowRecord) -> Replay:
        counts = (self.one(record.flags), record.prompt_tokens, record.completion_tokens, record.latency_s,
                  self.one(record.finish_reason), self.one(record.backend_flags), record.max_chars, record.time)
        return Replay(docids_digest(record.docids), array("H", record.permutation).tobytes(), counts)


class Journal:
    """Append-only JSONL trace: a header line, then one record per finished window, written at once.

    On `resume`, an existing journal is read (a torn last line from a kill is cut off), its header is
    checked against the current settings, and its successful window records serve as a cache keyed
    by `(qid, pass, start, end)` and validated by the window's docids.
    """

    def __init__(self, path: str, header: JournalHeader, resume: bool, fsync: bool = True,
                 fsync_every_s: float = 1.0) -> None:
        self.path = path
        self.header = header
        #: each record is written with one flush (a killed process loses nothing); fsync (against a
        #: crashed node) runs at most every `fsync_every_s`, so a slow shared filesystem never stalls
        #: the scheduler; `fsync=False` leaves syncing to the OS
        self.fsync = fsync
        self.fsync_every_s = fsync_every_s
        self._synced = 0.0
        #: the replay index: per window key, what replay needs of its record, compactly
        self.records: dict[tuple[str, int, int, int], Replay] = {}
        self._shared = _Shared()
        self.resumed = False
        self._failed = False
        self._handle: IO[bytes] | None = None
        # a journal torn inside its header line starts over
        if resume and _first_line_whole(path):
            self._load()
            self.resumed = True

    def _load(self) -> None:
        """Read the journal once, keeping what replay needs (not the model outputs, not failed windows),
        and cut off a torn last line."""
        def keep(record: WindowRecord) -> None:
            self.records[self._shared.key(record)] = self._shared.compact(record)

        found = read_journal(self.path, outputs=False, failed=False, check=self._check_header, each=keep)
        if found.torn is not None:
            size = os.path.getsize(self.path) - found.torn
            log.warning("%s: dropping a torn last line (%d bytes) left by an interrupted run", self.path, size)
            with open(self.path, "r+b") as handle:
                handle.truncate(found.torn)

    def _check_header(self, header: JournalHeader) -> None:
        diff = header.settings.differences(self.header.settings)
        if diff:
            raise InputError(
                "journal was written with other settings (" + "; ".join(diff) + "); use another --trace "
                "or --overwrite instead of --resume to start over", self.path, 1,
            )

    def lookup(self, window: Window) -> WindowRecord | None:
        """The journaled result for `window`, if one exists for exactly these docids."""
        found = self.records.get(window.key)
        if found is None or found.docids != docids_digest(window.docids):
            return None
        record = found.record(window)
        if sorted(record.permutation) != list(range(len(window.docids))):
            return None
        return record

    def open(self) -> None:
        """Open for appending; a fresh journal (or one not resumed) starts with the header."""
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        if self.resumed:
            self._handle = open(self.path, "ab")  # noqa: SIM115
        else:
            self._handle = open(self.path, "wb")  # noqa: SIM115
            self._write(self.header.to_json())

    def write(self, record: WindowRecord) -> None:
        """Append one window record and flush it to the file (fsync'd at most every `fsync_every_s`)."""
        if self._handle is None:
            self.open()
        self._write(record.to_json())

    def _write(self, data: dict[str, object]) -> None:
        assert self._handle is not None
        try:
            self._handle.write(orjson.dumps(data) + b"\n")
            self._handle.flush()
            now = time.monotonic()
            if self.fsync and now - self._synced >= self.fsync_every_s:
                os.fsync(self._handle.fileno())
                self._synced = now
        except OSError as exc:  # a full disk, a quota: stop, with every whole line kept for --resume
            self._failed = True
            raise RearankError(f"{self.path}: cannot write the journal ({exc.strerror or exc}); it holds every "
                               "window finished so far: make room (or copy it elsewhere) and rerun with "
                               "--resume") from None

    def close(self) -> None:
        """Close the file (after a failed write, without raising again)."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
                handle.close()
            except OSError:
                if not self._failed:
                    raise
                with contextlib.suppress(OSError):
                    handle.close()


def earlier_records(path: str) -> int:
    """How many non-blank lines the file at `path` holds after its first (a journal's window records: what a
    run without `--resume` would overwrite); 0 for a missing, empty or header-only file."""
    try:
        handle = open(path, "rb")  # noqa: SIM115
    except OSError:
        return 0
    with handle:
        return max(sum(1 for line in handle if line.strip()) - 1, 0)


def _first_line_whole(path: str) -> bool:
    """Whether the file at `path` exists and holds at least one whole (newline-ended) line."""
    try:
        with open(path, "rb") as handle:
            return handle.readline().endswith(b"\n")
    except OSError:
        return False
