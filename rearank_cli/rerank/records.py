"""The records of a rerank run, typed, frozen and versioned, each with its JSON in one place: `to_json`
writes it (field names and order as users and tests read them), `from_json` reads it back (a field an
older file lacks takes its default; unknown fields are ignored).

- `WindowRecord`: one line of a journal per finished window; `JournalHeader` (with `JournalSettings`):
  the journal's first line (`rearank.rerank.journal/N`; a reader refuses a newer N).
- `RunSummary` (with `WindowCounts`, `TokenCounts`): the counters of a run, the manifest's `summary`.

The manifests that carry them are in `rerank.manifests`; the journal file is read by `rerank.journal`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Self

from rearank_cli.parse import ParseFlags
from rearank_cli.provenance import SCHEMAS, Provenance, check_schema
from rearank_cli.provenance import text_or_none as _str
from rearank_cli.rerank.plan import Window
from rearank_cli.rerank.strategies.registry import strategy_of
from rearank_cli.settings.base import fields as setting_fields
from rearank_cli.settings.base import type_problem
from rearank_cli.settings.rerank import RerankOptions

JSON = dict[str, Any]


def _fields_json(record: Any) -> JSON:
    """A flat dataclass record as a JSON object, in field order."""
    return {item.name: getattr(record, item.name) for item in fields(record)}


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# ---------------------------------------------------------------- the journal


@dataclass(frozen=True)
class WindowRecord:
    """One finished window as the journal holds it (a failed window keeps its order, `failed` true).

    `flags` are the parser's flags plus `recovered`; `backend_flags` the backend's own notes; `max_chars`
    the passage length the prompt was shortened to (None: not shortened)."""

    qid: str
    pass_: int
    index: int
    start: int
    end: int
    docids: tuple[str, ...]
    permutation: tuple[int, ...]
    output: str | None = None
    flags: Mapping[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str | None = None
    backend_flags: Mapping[str, Any] = field(default_factory=dict)
    max_chars: int | None = None
    failed: bool = False
    error: str | None = None
    time: float = 0.0

    @classmethod
    def failure(cls, window: Window, error: Exception, latency: float) -> WindowRecord:
        """The record of a window whose model call failed: its order is kept."""
        return cls(window.qid, window.pass_, window.index, window.start, window.end, tuple(window.docids),
                   tuple(range(len(window.docids))), flags=ParseFlags().as_dict(), latency_s=round(latency, 4),
                   failed=True, error=f"{type(error).__name__}: {error}", time=round(time.time(), 3))

    def to_json(self) -> JSON:
        """The JSON object of one journal line (`error` only on failed windows)."""
        data: JSON = {
            "type": "window", "qid": self.qid, "pass": self.pass_, "index": self.index, "start": self.start,
            "end": self.end, "docids": list(self.docids), "output": self.output,
            "permutation": list(self.permutation), "flags": dict(self.flags), "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "latency_s": self.latency_s,
            "finish_reason": self.finish_reason, "backend_flags": dict(self.backend_flags),
            "max_chars": self.max_chars, "failed": self.failed,
        }
        if self.failed:
            data["error"] = self.error
        data["time"] = self.time
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WindowRecord:
        """A record from one journal line (missing optional fields take their defaults); KeyError,
        TypeError or ValueError when a required field is missing or malformed, or when the docids, the
        span and the permutation disagree."""
        record = cls(
            qid=str(data["qid"]), pass_=int(data["pass"]), index=int(data["index"]), start=int(data["start"]),
            end=int(data["end"]), docids=tuple(str(d) for d in data["docids"]),
            permutation=tuple(int(i) for i in data["permutation"]), output=_str(data.get("output")),
            flags=dict(data.get("flags") or {}), prompt_tokens=int(data.get("prompt_tokens") or 0),
            completion_tokens=int(data.get("completion_tokens") or 0),
            latency_s=float(data.get("latency_s") or 0.0), finish_reason=_str(data.get("finish_reason")),
            backend_flags=dict(data.get("backend_flags") or {}), max_chars=_int(data.get("max_chars")),
            failed=bool(data.get("failed")), error=_str(data.get("error")), time=float(data.get("time") or 0.0),
        )
        if record.end - record.start != len(record.docids) or sorted(record.permutation) != list(
                range(len(record.docids))):
            raise ValueError("its docids, span and permutation disagree")
        return record

    @property
    def key(self) -> tuple[str, int, int, int]:
        """The window's journal key `(qid, pass, start, end)`."""
        return (self.qid, self.pass_, self.start, self.end)

    @property
    def order(self) -> list[str]:
        """The window's docids in the order the model put them."""
        return [self.docids[i] for i in self.permutation]


@dataclass(frozen=True)
class JournalSettings:
    """The settings a journal header records; all of them must match for `--resume` to reuse its windows.
    None: not recorded (an older journal)."""

    model: str | None = None
    prompt: str | None = None
    prompt_hash: str | None = None
    window: int | None = None
    step: int | None = None
    depth: int | None = None
    passes: int | None = None
    window_schedule: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    #: the sha256 of the `--lora` adapter's files (None: no adapter)
    lora: str | None = None
    #: the window strategy and its parameters: recorded for `tdpart` only (None: the sliding window, and
    #: journals written before strategies), so sliding-window journals read and resume as before
    strategy: str | None = None
    #: the strategy's own parameters by name (`Strategy.Params`), written as keys of the header's settings
    #: right after `strategy` (None: a strategy without any)
    strategy_params: Mapping[str, Any] | None = None
    #: the prompt family's own parameters (None: a family without any, or an older journal)
    prompt_params: Mapping[str, Any] | None = None

    def to_json(self) -> JSON:
        """The header's `settings` object (the strategy keys and the prompt parameters only when recorded)."""
        data: JSON = {}
        for key, value in _fields_json(self).items():
            if key == "strategy_params":
                data.update(value or {})
            elif value is not None or key not in _OPTIONAL_KEYS:
                data[key] = dict(value) if key == "prompt_params" else value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JournalSettings:
        """The settings of a header read back (TypeError or ValueError when one is malformed)."""
        return cls(
            model=_str(data.get("model")), prompt=_str(data.get("prompt")), prompt_hash=_str(data.get("prompt_hash")),
            window=_int(data.get("window")), step=_int(data.get("step")), depth=_int(data.get("depth")),
            passes=_int(data.get("passes")), window_schedule=_str(data.get("window_schedule")),
            max_tokens=_int(data.get("max_tokens")), temperature=_float(data.get("temperature")),
            top_p=_float(data.get("top_p")), seed=_int(data.get("seed")), lora=_str(data.get("lora")),
            strategy=_str(data.get("strategy")), strategy_params=_strategy_params(data),
            prompt_params=_params(data.get("prompt_params")),
        )

    def differences(self, other: JournalSettings) -> list[str]:
        """`name old -> new` for each setting that differs from `other`'s (a strategy parameter by its name)."""
        mine, theirs = self.to_json(), other.to_json()
        return [f"{key} {mine.get(key)!r} -> {theirs.get(key)!r}" for key in {**mine, **theirs}
                if mine.get(key) != theirs.get(key)]


#: header settings written only when recorded (a sliding-window journal of a family without parameters
#: has none of them, as journals written before strategies and prompt families)
_OPTIONAL_KEYS = ("strategy", "strategy_params", "prompt_params")


def _strategy_params(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """The parameters of the strategy a header's settings name, checked against their declared types."""
    found = {}
    for item, _, hint in setting_fields(strategy_of(_str(data.get("strategy"))).Params):
        if item.name in data:
            problem = type_problem(data[item.name], hint)
            if problem:
                raise TypeError(f"{item.name}: {problem}")
            found[item.name] = data[item.name]
    return found or None


def _params(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError("prompt_params is not an object")
    return dict(value)


#: journal settings that must match for `--resume` to reuse a journal's windows
RESUME_KEYS = tuple(item.name for item in fields(JournalSettings))


@dataclass(frozen=True)
class JournalHeader:
    """The first line of a journal: provenance, the settings (`RESUME_KEYS`), the backend's name, the shard
    (`I/N` or None) and the first-stage run as given to `rerank`."""

    settings: JournalSettings
    provenance: Provenance = field(default_factory=lambda: Provenance(SCHEMAS["rerank.journal"]))
    backend: str | None = None
    shard: str | None = None
    run: str | None = None

    def to_json(self) -> JSON:
        """The header line's JSON object."""
        return {"type": "header", **self.provenance.to_json(), "settings": self.settings.to_json(),
                "backend": self.backend, "shard": self.shard, "run": self.run}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JournalHeader:
        """A header read back: ValueError when the line is no header or from a newer rearank, TypeError
        when a field is malformed."""
        if data.get("type") != "header":
            raise ValueError("not a rearank journal (no header line)")
        problem = check_schema(_str(data.get("schema")), "rerank.journal")
        if problem:
            raise ValueError(f"not a journal this rearank reads: {problem}")
        return cls(JournalSettings.from_json(dict(data.get("settings") or {})),
                   Provenance.from_json(data, SCHEMAS["rerank.journal"]), _str(data.get("backend")),
                   _str(data.get("shard")), _str(data.get("run")))

    @property
    def prompt(self) -> str:
        """The prompt family the windows were built with (the default family for journals that do not say)."""
        return self.settings.prompt or RerankOptions.prompt


# ---------------------------------------------------------------- the run summary


@dataclass(frozen=True)
class Counts:
    """A record of named counts (a count an older file lacks reads as 0)."""

    def to_json(self) -> JSON:
        """The counts as a JSON object, in field order."""
        return _fields_json(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Counts read back."""
        return cls(**{item.name: int(data.get(item.name) or 0) for item in fields(cls)})

    def __add__(self, other: Self) -> Self:
        return type(self)(*(getattr(self, item.name) + getattr(other, item.name) for item in fields(self)))


@dataclass(frozen=True)
class WindowCounts(Counts):
    """Windows of a run (the summary's `windows`): all of them, replayed from the journal, generated now,
    failed, shortened to fit the context, cut by `--max-tokens`."""

    total: int = 0
    replayed: int = 0
    generated: int = 0
    failed: int = 0
    shortened: int = 0
    finish_length: int = 0


@dataclass(frozen=True)
class TokenCounts(Counts):
    """Tokens of every window of a run, and of the windows generated in this session (the summary's
    `tokens`)."""

    prompt: int = 0
    completion: int = 0
    session_prompt: int = 0
    session_completion: int = 0


@dataclass(frozen=True)
class RunSummary:
    """What a rerank run did (the manifest's `summary`): counters, parse failures by kind, tokens and
    throughput over the windows generated in this session, the first errors of failed windows."""

    queries: int = 0
    windows: WindowCounts = field(default_factory=WindowCounts)
    parse_failures: Mapping[str, int] = field(default_factory=dict)
    backend_flags: Mapping[str, int] = field(default_factory=dict)
    tokens: TokenCounts = field(default_factory=TokenCounts)
    wall_s: float = 0.0
    windows_per_s: float = 0.0
    tokens_per_s: float = 0.0
    first_errors: tuple[str, ...] = ()

    def to_json(self) -> JSON:
        """The manifest's `summary` object."""
        return {
            "queries": self.queries, "windows": self.windows.to_json(), "parse_failures": dict(self.parse_failures),
            "backend_flags": dict(self.backend_flags), "tokens": self.tokens.to_json(), "wall_s": self.wall_s,
            "windows_per_s": self.windows_per_s, "tokens_per_s": self.tokens_per_s,
            "first_errors": list(self.first_errors),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunSummary:
        """A summary read back."""
        return cls(
            int(data.get("queries") or 0), WindowCounts.from_json(data.get("windows") or {}),
            {str(k): int(v) for k, v in dict(data.get("parse_failures") or {}).items()},
            {str(k): int(v) for k, v in dict(data.get("backend_flags") or {}).items()},
            TokenCounts.from_json(data.get("tokens") or {}), float(data.get("wall_s") or 0.0),
            float(data.get("windows_per_s") or 0.0), float(data.get("tokens_per_s") or 0.0),
            tuple(str(e) for e in data.get("first_errors") or ()),
        )

    def lines(self) -> list[str]:
        """The human-readable end-of-run summary (for stderr)."""
        windows, tokens = self.windows, self.tokens
        failures = ", ".join(f"{k} {v}" for k, v in self.parse_failures.items() if v) or "none"
        return [
            f"{self.queries} queries, {windows.total} windows ({windows.generated} generated, "
            f"{windows.replayed} replayed from the journal, {windows.failed} failed, "
            f"{windows.shortened} shortened to fit the context, {windows.finish_length} hit --max-tokens)",
            f"parse failures by kind: {failures}",
            f"tokens: {tokens.prompt} prompt, {tokens.completion} completion; "
            f"{self.wall_s:.1f} s, {self.windows_per_s:.3f} windows/s, {self.tokens_per_s:.1f} tokens/s",
        ]
