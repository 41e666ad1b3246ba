"""The Python API: `Reranker` (a backend plus rerank settings) and `evaluate` (in-memory runs).

    from rearank_cli import Reranker
    with Reranker("le723z/Rearank-7B", backend="vllm") as reranker:   # the defaults: settings.rerank
        order = reranker.rerank("what is a protein", ["Rocks are hard.", "Proteins are biomolecules."])

`rearank rerank` goes through the same class (files -> `Reranker` -> files, see `jobs.rerank`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from rearank_cli.backends.base import Backend, Sampling
from rearank_cli.errors import InputError, RerankIncomplete
from rearank_cli.formats.trec import Hit, Run
from rearank_cli.prompts.registry import get_family
from rearank_cli.rerank.inputs import load_queries
from rearank_cli.rerank.journal import Journal
from rearank_cli.rerank.plan import QueryInput, RerankSettings, build_run
from rearank_cli.rerank.scheduler import RerankResult, rerank_queries
from rearank_cli.rerank.strategies.registry import split_params
from rearank_cli.settings.commands import DEFAULT_MEASURES, EvalOptions
from rearank_cli.settings.rerank import RerankOptions as _O
from rearank_cli.stopping import StopSignal

T = TypeVar("T")


def with_tokenizer(settings: RerankSettings, model: str | None) -> RerankSettings:
    """`settings` with the tokenizer of `model` when its prompt family cuts passages by tokens and has none."""
    if settings.tokenizer is not None or not settings.prompt_spec.needs_tokenizer:
        return settings
    if model is None:
        raise InputError(f"prompt {settings.prompt!r} cuts passages by tokens: give the model whose tokenizer "
                         "it uses")
    from rearank_cli.backends.tokenizer import load_tokenizer

    return dataclasses.replace(settings, tokenizer=load_tokenizer(model))


class Reranker:
    """A listwise LLM reranker: `Reranker(model, backend="vllm", prompt="rearank", window=20, step=10,
    depth=100, strategy="sliding", **options)`; a strategy's own parameters are keywords named as its flags
    (`--NAME-PARAM` as `NAME_PARAM=`, see `rerank.strategies`), the other keywords go to the backend.

    `backend` is a name (`vllm`, `hf`, `openai`; `backend_options` go to it, e.g. `base_url=` for openai)
    or a ready `backends.base.Backend` object. Use it as `with Reranker(...) as r:` (a private event-loop
    thread owns the started backend) or `async with Reranker(...) as r:` (the running loop owns it);
    sync calls outside a `with` start it on first use, and `close()` releases it.
    """

    def __init__(self, model: str | None = None, backend: str | Backend = _O.backend, *, prompt: str = _O.prompt,
                 window: int = _O.window, step: int = _O.step, depth: int = _O.depth, passes: int = _O.passes,
                 window_schedule: str = _O.window_schedule, sampling: Sampling | None = None,
                 max_tokens: int | None = None, max_inflight: int | None = _O.max_inflight,
                 strategy: str = _O.strategy, prompt_params: Mapping[str, Any] | None = None,
                 settings: RerankSettings | None = None, **options: Any) -> None:
        """`settings` (a whole `RerankSettings`, as `rearank rerank` builds it) replaces prompt ... prompt_params
        and the strategy's parameters when given. `sampling` defaults to the prompt family's decoding;
        `max_tokens` (new tokens per window) overrides its. A family that cuts passages by tokens gets the
        tokenizer of `model`."""
        strategy_params, backend_options = split_params(options)
        if settings is None:
            sampling = sampling or get_family(prompt).decoding.sampling()
            if max_tokens is not None:
                sampling = dataclasses.replace(sampling, max_tokens=max_tokens)
            settings = RerankSettings(
                prompt=prompt, window=window, step=step, depth=depth, passes=passes, window_schedule=window_schedule,
                sampling=sampling, max_inflight=max_inflight, strategy=strategy, strategy_params=strategy_params,
                prompt_params=dict(prompt_params or {}))
        self.settings = with_tokenizer(settings, model)
        self.settings.check()
        if isinstance(backend, Backend):
            self.backend = backend
        else:
            from rearank_cli.backends import load_backend

            if model is None:
                raise ValueError("Reranker needs a model when the backend is given by name")
            self.backend = load_backend(backend, model, **backend_options)
        self.model = model
        self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- async use

    async def astart(self) -> None:
        """Start the backend (load the model, check the server); idempotent."""
        if not self._started:
            await self.backend.start()
            self._started = True

    async def aclose(self) -> None:
        """Close the backend."""
        if self._started:
            self._started = False
            await self.backend.close()

    async def __aenter__(self) -> Reranker:
        await self.astart()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def arerank_queries(self, queries: Iterable[QueryInput], journal: Journal | None = None, *,
                              progress: Callable[[int], None] | None = None, stop: StopSignal | None = None,
                              finished: Callable[[int, QueryInput, list[str]], None] | None = None,
                              count: int | None = None) -> RerankResult:
        """Rerank `QueryInput`s (a list or a stream) with the started backend; `finished` takes each query's
        final order as soon as it is done (see `rerank.scheduler.rerank_queries`)."""
        return await rerank_queries(queries, self.backend, self.settings, journal, progress=progress, stop=stop,
                                    finished=finished, count=count)

    async def arerank(self, query: str, passages: Sequence[str]) -> list[int]:
        """The new order of `passages` for `query`, as a permutation of `range(len(passages))` (best
        first); passages beyond `depth` keep their order below the reranked ones."""
        await self.astart()
        hits = [(str(i), float(len(passages) - i)) for i in range(len(passages))]
        query_input = QueryInput("0", query, hits, {str(i): text for i, text in enumerate(passages)})
        result = _complete(await self.arerank_queries([query_input]))
        return [int(docid) for docid in result.orders["0"]]

    async def arerank_run(self, run: Mapping[str, Sequence[Hit]], topics: Mapping[str, str],
                          texts: Mapping[str, str]) -> Run:
        """Rerank a run `{qid: [(docid, score), ...]}` (in rank order) given the query texts by qid and the
        passage texts by docid; returns the reranked run with strictly decreasing scores. A qid without a
        topic or a head docid without a text is an InputError."""
        await self.astart()
        loaded = load_queries({qid: list(hits) for qid, hits in run.items()}, dict(topics),
                              lambda wanted: {d: texts[d] for d in wanted if d in texts},
                              depth=self.settings.depth, prompt=self.settings.prompt)
        result = _complete(await self.arerank_queries(loaded.queries))
        return build_run(loaded.queries, result.orders)

    # -- sync use: a private event-loop thread owns the backend

    def __enter__(self) -> Reranker:
        self._call(self.astart())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rerank(self, query: str, passages: Sequence[str]) -> list[int]:
        """Sync `arerank`."""
        return self._call(self.arerank(query, passages))

    def rerank_run(self, run: Mapping[str, Sequence[Hit]], topics: Mapping[str, str],
                   texts: Mapping[str, str]) -> Run:
        """Sync `arerank_run`."""
        return self._call(self.arerank_run(run, topics, texts))

    def close(self) -> None:
        """Close the backend and stop the private event-loop thread (sync use)."""
        if self._loop is None:
            return
        try:
            self._call(self.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            assert self._thread is not None
            self._thread.join()
            self._loop.close()
            self._loop = self._thread = None

    def _call(self, work: Awaitable[T]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="rearank-reranker", daemon=True)
            self._thread.start()
        future: Future[T] = asyncio.run_coroutine_threadsafe(_awaited(work), self._loop)
        return future.result()


def _complete(result: RerankResult) -> RerankResult:
    """`result`, or RerankIncomplete when any window failed (a library call never passes a partly
    failed ranking off as a result)."""
    stats = result.stats
    if stats.failed:
        first = stats.errors[0] if stats.errors else "unknown"
        raise RerankIncomplete(f"{stats.failed} of {stats.windows} windows failed (first: {first})", result)
    return result


async def _awaited(work: Awaitable[T]) -> T:
    return await work


def evaluate(run: Mapping[str, Sequence[Hit] | Mapping[str, float]] | str, qrels: Mapping[str, Mapping[str, int]] | str,
             measures: Iterable[str] = DEFAULT_MEASURES[:1], level: int = EvalOptions.level) -> dict[str, float]:
    """Mean of each measure (trec_eval names or `nDCG@10`-style) over the qrels' queries (trec_eval -c),
    for an in-memory run `{qid: [(docid, score), ...]}` or `{qid: {docid: score}}` (or a run file path)
    and qrels `{qid: {docid: label}}` (or a qrels path); `level` is the relevance threshold."""
    from rearank_cli.evaluation import evaluate as evaluate_scores

    scores = run if isinstance(run, str) else {
        qid: dict(hits) if isinstance(hits, Mapping) else {d: float(s) for d, s in hits} for qid, hits in run.items()}
    judged = qrels if isinstance(qrels, str) else {qid: dict(docs) for qid, docs in qrels.items()}
    return evaluate_scores(scores, judged, list(measures), level)
