"""The rerank journal: an append-only JSONL trace of finished windows, for `--resume` and the report.

The first line is the header (`type: header`, its `schema`, the provenance block, the settings of which
`RESUME_KEYS` must match on resume); every later line is one `WindowRecord`, written with one flush as
soon as its window is done.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from rearank_cli.errors import InputError
from rearank_cli.parse import ParseFlags
from rearank_cli.rerank.plan import Window

log = logging.getLogger("rearank")

#: journal settings that must match for `--resume` to reuse a journal's windows
RESUME_KEYS = (
    "model", "prompt", "prompt_hash", "window", "step", "depth", "passes", "window_schedule",
    "max_tokens", "temperature", "top_p", "seed", "lora",
    # the window strategy: absent from sliding-window journals, so those resume as before
    "strategy", "tdpart_pivot", "tdpart_top_k", "tdpart_budget",
)


@dataclass
class WindowRecord:
    """One finished window as the journal holds it (a failed window keeps its order, `failed` true).

    `flags` are the parser's flags plus `recovered`; `backend_flags` the backend's own notes; `max_chars`
    the passage length the prompt was shortened to (None: not shortened)."""

    qid: str
    pass_: int
    index: int
    start: int
    end: int
    docids: list[str]
    permutation: list[int]
    output: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str | None = None
    backend_flags: dict[str, Any] = field(default_factory=dict)
    max_chars: int | None = None
    failed: bool = False
    error: str | None = None
    time: float = 0.0

    @classmethod
    def failure(cls, window: Window, error: Exception, latency: float) -> WindowRecord:
        """The record of a window whose model call failed: its order is kept."""
        return cls(window.qid, window.pass_, window.index, window.start, window.end, list(window.docids),
                   list(range(len(window.docids))), flags=ParseFlags().as_dict(), latency_s=round(latency, 4),
                   failed=True, error=f"{type(error).__name__}: {error}", time=round(time.time(), 3))

    def to_json(self) -> dict[str, Any]:
        """The JSON object of one journal line (`error` only on failed windows)."""
        data: dict[str, Any] = {
            "type": "window", "qid": self.qid, "pass": self.pass_, "index": self.index, "start": self.start,
            "end": self.end, "docids": list(self.docids), "output": self.output,
            "permutation": list(self.permutation), "flags": self.flags, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "latency_s": self.latency_s,
            "finish_reason": self.finish_reason, "backend_flags": self.backend_flags,
            "max_chars": self.max_chars, "failed": self.failed,
        }
        if self.failed:
            data["error"] = self.error
        data["time"] = self.time
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WindowRecord:
        """A record from one journal line (missing optional fields take their defaults); KeyError,
        TypeError or ValueError when a required field is missing or malformed."""
        return cls(
            qid=str(data["qid"]), pass_=int(data["pass"]), index=int(data.get("index") or 0),
            start=int(data["start"]), end=int(data["end"]), docids=[str(d) for d in data["docids"]],
            permutation=[int(i) for i in data.get("permutation") or []], output=data.get("output"),
            flags=dict(data.get("flags") or {}), prompt_tokens=int(data.get("prompt_tokens") or 0),
            completion_tokens=int(data.get("completion_tokens") or 0),
            latency_s=float(data.get("latency_s") or 0.0), finish_reason=data.get("finish_reason"),
            backend_flags=dict(data.get("backend_flags") or {}), max_chars=data.get("max_chars"),
            failed=bool(data.get("failed")), error=data.get("error"), time=float(data.get("time") or 0.0),
        )

    @property
    def key(self) -> tuple[str, int, int, int]:
        """The window's journal key `(qid, pass, start, end)`."""
        return (self.qid, self.pass_, self.start, self.end)


class Journal:
    """Append-only JSONL trace: a header line, then one record per finished window, written at once.

    On `resume`, an existing journal is read (a torn last line from a kill is cut off), its header is
    checked against the current settings, and its successful window records serve as a cache keyed
    by `(qid, pass, start, end)` and validated by the window's docids.
    """

    def __init__(self, path: str, header: dict[str, Any], resume: bool, fsync: bool = True,
                 fsync_every_s: float = 1.0) -> None:
        self.path = path
        self.header = header
        #: each record is written with one flush (a killed process loses nothing); fsync (against a
        #: crashed node) runs at most every `fsync_every_s`, so a slow shared filesystem never stalls
        #: the scheduler; `fsync=False` leaves syncing to the OS
        self.fsync = fsync
        self.fsync_every_s = fsync_every_s
        self._synced = 0.0
        self.records: dict[tuple[str, int, int, int], WindowRecord] = {}
        self.resumed = False
        self._handle: IO[bytes] | None = None
        self._header_seen = False
        if resume and os.path.exists(path) and os.path.getsize(path) > 0:
            self._load()
            self.resumed = self._header_seen  # a journal torn inside its header line starts over

    def _load(self) -> None:
        """Stream the journal once, keeping what replay needs (not the model outputs)."""
        offset = 0
        torn = None
        with open(self.path, "rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.endswith(b"\n"):
                    torn = (offset, len(line))
                    break
                offset += len(line)
                if line.strip():
                    self._read_line(line, number)
        if torn is not None:
            log.warning("%s: dropping a torn last line (%d bytes) left by an interrupted run", self.path, torn[1])
            with open(self.path, "r+b") as handle:
                handle.truncate(torn[0])

    def _read_line(self, line: bytes, number: int) -> None:
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"invalid journal record ({exc})", self.path, number) from None
        if number == 1:
            self._check_header(data)
            self._header_seen = True
        elif data.get("type") == "window" and not data.get("failed"):
            data.pop("output", None)
            try:
                record = WindowRecord.from_json(data)
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"invalid window record ({type(exc).__name__}: {exc})", self.path, number) from None
            self.records[record.key] = record

    def _check_header(self, record: dict[str, Any]) -> None:
        if record.get("type") != "header":
            raise InputError("not a rearank journal (no header line)", self.path, 1)
        old = record.get("settings", {})
        new = self.header["settings"]
        diff = [f"{key} {old.get(key)!r} -> {new.get(key)!r}" for key in RESUME_KEYS if old.get(key) != new.get(key)]
        if diff:
            raise InputError(
                "journal was written with other settings (" + "; ".join(diff) + "); use another --trace "
                "or drop --resume to start over", self.path, 1,
            )

    def lookup(self, window: Window) -> WindowRecord | None:
        """The journaled result for `window`, if one exists for exactly these docids."""
        record = self.records.get(window.key)
        if record is None or tuple(record.docids) != window.docids:
            return None
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
            if os.path.exists(self.path) and os.path.getsize(self.path) > 0:
                log.warning("%s: overwriting an existing journal (use --resume to continue it)", self.path)
            self._handle = open(self.path, "wb")  # noqa: SIM115
            self._write(self.header)

    def write(self, record: WindowRecord) -> None:
        """Append one window record and flush it to the file (fsync'd at most every `fsync_every_s`)."""
        if self._handle is None:
            self.open()
        self._write(record.to_json())

    def _write(self, data: dict[str, Any]) -> None:
        assert self._handle is not None
        self._handle.write(orjson.dumps(data) + b"\n")
        self._handle.flush()
        now = time.monotonic()
        if self.fsync and now - self._synced >= self.fsync_every_s:
            os.fsync(self._handle.fileno())
            self._synced = now

    def close(self) -> None:
        """Close the file."""
        if self._handle is not None:
            self._handle.flush()
            if self.fsync:
                os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None
