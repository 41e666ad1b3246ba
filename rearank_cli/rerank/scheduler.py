"""The continuous async scheduler: query state machines driven against one backend.

`rerank_queries(queries, backend, settings)` takes any `backends.base.Backend`, so benchmarks, tests and
the Python API drive it without files. Each query's window strategy (`rerank.strategies`) says which of
its windows are ready: the sliding window's one at a time (each permutation is applied before the next
window's prompt is built), all windows of a tdpart round at once. Different queries are independent, up
to `max_inflight` requests are in flight at any moment, and a query's next windows go out as soon as the
answers they depend on are in (no lock-step rounds across queries).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from rearank_cli.backends.base import (
    Backend,
    BackendError,
    ContextTooLong,
    Generation,
    NullBackend,
)
from rearank_cli.errors import InputError, RearankError
from rearank_cli.prompt_fit import MIN_PASSAGE_CHARS, PromptFit
from rearank_cli.rerank.journal import Journal
from rearank_cli.rerank.plan import QueryInput, RerankSettings, Window
from rearank_cli.rerank.records import WindowRecord
from rearank_cli.rerank.stats import RerankStats
from rearank_cli.rerank.strategies.base import StrategyState
from rearank_cli.rerank.strategies.registry import new_state
from rearank_cli.stopping import StopSignal, run_until_stopped

log = logging.getLogger("rearank")

#: requests of one window re-sent shorter after the server said the prompt does not fit
CONTEXT_RETRIES = 6




@dataclass
class RerankResult:
    """Final docid order per qid (input order of queries) plus the run's counters; per qid, the windows
    applied and the longest chain of dependent windows among them (the critical path)."""

    orders: dict[str, list[str]]
    stats: RerankStats
    windows: dict[str, int] = field(default_factory=dict)
    critical_path: dict[str, int] = field(default_factory=dict)


class _Scheduler:
    """Drives the query state machines against one backend (see `rerank_queries`)."""

    def __init__(self, backend: Backend, settings: RerankSettings, journal: Journal | None,
                 progress: Callable[[int], None] | None, queries: int) -> None:
        self.backend = backend
        self.settings = settings
        self.journal = journal
        self.progress = progress or (lambda n: None)
        self.stats = RerankStats(queries=queries)
        self.consecutive_failures = 0
        #: builds each window's request to fit the model's context (the backend's, or learned from a
        #: server's context-length error)
        self.fit = PromptFit(settings.prompt_spec, settings.sampling, backend.context_length,
                             backend.count_prompt_tokens)
        self.tags = settings.prompt_spec.answer_tags

    def start(self, query: QueryInput) -> StrategyState:
        """A query's state with every journaled window whose inputs match applied, until no ready window
        is found in the journal."""
        state = new_state(query, self.settings)
        if self.journal is None:
            return state
        replayed = True
        while replayed and not state.done:
            replayed = False
            for window in state.ready():
                record = self.journal.lookup(window)
                if record is None:
                    continue
                state.apply(window, record.permutation)
                replayed = True
                self.stats.replayed += 1
                self.stats.count_record(record, self.tags)
        return state

    async def run(self, queries: Iterable[QueryInput], finished: Callable[[int, StrategyState], None]) -> None:
        """Run all queries with up to `max_inflight` requests in flight; a worker takes the next query as
        soon as its current one is done and runs that query's windows: one after the other while the
        strategy readies one at a time (the sliding window), all ready ones at once otherwise (a tdpart
        round), each round starting as soon as the answers it depends on are in. Queries are taken from
        `queries` only when a worker is free (so a stream holds only those in flight); `finished(i,
        state)` gets each query once done, `i` its position in `queries`."""
        feed = enumerate(queries)
        limit = self.settings.max_inflight or self.backend.preferred_inflight or 32
        slots = asyncio.Semaphore(limit)

        async def worker() -> None:
            for index, query in feed:
                state = self.start(query)
                while not state.done:
                    await self.run_ready(state, slots)
                finished(index, state)

        await run_all([worker() for _ in range(limit)])

    async def run_ready(self, state: StrategyState, slots: asyncio.Semaphore) -> None:
        """Run the windows `state` has ready: one is awaited in place, several run side by side."""
        windows = state.ready()
        if len(windows) == 1:
            await self.run_window(state, windows[0], slots)
        else:
            await run_all([self.run_window(state, window, slots) for window in windows])

    async def generate(self, session: str, query: str, texts: list[str]) -> tuple[Generation, int | None]:
        """Generate one window; when the backend says the prompt does not fit (a server's context-length
        error), shorten the passages further and send it again. Returns the generation and the passage
        length used (None when not shortened)."""
        request, chars = self.fit.request(query, texts, session)
        retries = 0
        while True:
            try:
                return await self.backend.agenerate(request), chars
            except ContextTooLong as exc:
                retries += 1
                if retries > CONTEXT_RETRIES or chars == MIN_PASSAGE_CHARS:
                    raise
                request, chars = self.fit.shorter(exc, query, texts, request, chars)

    async def run_window(self, state: StrategyState, window: Window, slots: asyncio.Semaphore) -> None:
        """Generate (holding one of the `max_inflight` slots), parse, journal and apply one ready window."""
        texts = [state.query.texts[docid] for docid in window.docids]
        began = time.perf_counter()
        try:
            async with slots:
                generation, max_chars = await self.generate(state.query.qid, state.query.query, texts)
        except BackendError as exc:
            record = WindowRecord.failure(window, exc, time.perf_counter() - began)
        else:
            record = self.record(window, generation, time.perf_counter() - began, max_chars)
        if self.journal is not None:
            self.journal.write(record)
        state.apply(window, record.permutation)
        if not record.failed:
            self.stats.generated += 1
        self.stats.count_record(record, self.tags)
        self.stats.session_prompt_tokens += record.prompt_tokens
        self.stats.session_completion_tokens += record.completion_tokens
        self.progress(1)
        self.check_failures(record)

    def check_failures(self, record: WindowRecord) -> None:
        """Abort after too many failed windows in a row (a dead server), keeping the journal."""
        if not record.failed:
            self.consecutive_failures = 0
            return
        self.consecutive_failures += 1
        if len(self.stats.errors) < 20:
            self.stats.errors.append(str(record.error))
        log.warning("window %s %d-%d of query %s failed: %s", record.pass_, record.start, record.end,
                    record.qid, record.error)
        if self.consecutive_failures >= self.settings.max_consecutive_failures:
            raise RearankError(
                f"{self.consecutive_failures} windows in a row failed (last: {record.error}); "
                "stopping with the journal intact: fix the backend and rerun with --resume"
            )

    def record(self, window: Window, generation: Generation, latency: float, max_chars: int | None) -> WindowRecord:
        """The journal record of a window the backend answered."""
        permutation, flags = self.fit.prompt.parse(generation.text, len(window.docids))
        return WindowRecord(
            window.qid, window.pass_, window.index, window.start, window.end, tuple(window.docids), tuple(permutation),
            output=generation.text,
            # parser flags, plus `recovered` (the answer was finished under the answer grammar after the
            # token limit; the backend's own notes are kept whole in `backend_flags`)
            flags={**flags.as_dict(), "recovered": bool((generation.flags or {}).get("recovered"))},
            prompt_tokens=generation.prompt_tokens, completion_tokens=generation.completion_tokens,
            latency_s=round(latency, 4), finish_reason=generation.finish_reason,
            backend_flags=generation.flags or {}, max_chars=max_chars, time=round(time.time(), 3),
        )



async def rerank_queries(
    queries: Iterable[QueryInput],
    backend: Backend,
    settings: RerankSettings,
    journal: Journal | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    stop: StopSignal | None = None,
    finished: Callable[[int, QueryInput, list[str]], None] | None = None,
    count: int | None = None,
) -> RerankResult:
    """Rerank `queries` with a started `backend` and return the final orders plus counters.

    Windows found in `journal` (with identical inputs) are replayed, not generated; every new window
    is appended to it. When `stop` is set, in-flight requests are cancelled and `Interrupted` is
    raised (exit status 128 + the signal's number); the journal then holds every window finished so
    far. A `BackendError` fails its window only (`ContextTooLong` first shortens the window and sends it again); a
    `BackendFatal` cancels the requests in flight and propagates.

    `queries` may be a stream: a query is taken from it only when a worker is free. With `finished`,
    each query's final docids go to `finished(position, query, docids)` as soon as it is done (in the
    order queries finish) and the result's `orders` stay empty, so memory holds only the queries in
    flight; `count` (the number of queries, for the counters) is then needed for a stream without len.
    """
    settings.check()
    context = backend.context_length
    if context and settings.sampling.max_tokens >= context:
        raise InputError(f"--max-tokens {settings.sampling.max_tokens} leaves no room for a prompt in the "
                         f"model's context of {context} tokens")
    if count is None:
        queries = list(queries)
        count = len(queries)
    scheduler = _Scheduler(backend, settings, journal, progress, count)
    orders: dict[int, tuple[str, list[str]]] = {}
    windows: dict[str, int] = {}
    critical_path: dict[str, int] = {}

    def done(index: int, state: StrategyState) -> None:
        windows[state.query.qid] = state.applied
        critical_path[state.query.qid] = state.critical_path
        if finished is not None:
            finished(index, state.query, state.final_docids())
        else:
            orders[index] = (state.query.qid, state.final_docids())

    began = time.perf_counter()
    try:
        await run_until_stopped(scheduler.run(queries, done), stop)
    finally:
        scheduler.stats.wall_s = time.perf_counter() - began
    return RerankResult(dict(orders[i] for i in sorted(orders)), scheduler.stats, windows, critical_path)


def plan_remaining(queries: Iterable[QueryInput], settings: RerankSettings, journal: Journal | None) -> int:
    """How many windows a run would generate after replaying `journal` (0: no backend needed); only the
    queries' hits are read, so texts may be left empty."""
    scheduler = _Scheduler(NullBackend(), settings, journal, None, 0)
    return sum(state.remaining() for state in map(scheduler.start, queries))


async def run_all(work: Sequence[Awaitable[None]]) -> None:
    """Await all of `work` side by side; when one fails (or this is cancelled), cancel the others and wait
    for them before raising, so no request outlives the run (nor writes to a closed journal)."""
    tasks = [asyncio.ensure_future(item) for item in work]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
