"""The one interface every generation backend implements.

A backend turns a `Request` (chat messages, sampling settings, and what the prompt asks for) into a text
and token counts. It never reads the prompt text back to learn the window size, the query or the answer
format: the request says so. It knows nothing of runs or files; the scheduler knows nothing of which
backend it drives. Requests are async so a scheduler can keep many in flight; `generate_batch` is the
sync convenience.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rearank_cli.errors import RearankError
from rearank_cli.settings.rerank import RerankOptions

Message = dict[str, str]


@dataclass(frozen=True)
class Sampling:
    """Decoding settings for one request (greedy by default, as the paper)."""

    max_tokens: int = RerankOptions.max_tokens
    temperature: float = RerankOptions.temperature
    top_p: float = RerankOptions.top_p
    seed: int | None = RerankOptions.seed


@dataclass(frozen=True)
class Request:
    """One generation request (see `prompts.Prompt.request`, which builds it for a window).

    `window_size`: the passages in the window (0 when not a window); `answer_tags`: the prompt asks for
    `<think>`/`<answer>` tags; `session`: requests with the same session (a query's windows) may share a
    cache or a replica; `answer_regex`: the grammar a cut-off answer may be completed under, or None."""

    messages: Sequence[Message]
    sampling: Sampling = field(default_factory=Sampling)
    window_size: int = 0
    answer_tags: bool = False
    session: str | None = None
    answer_regex: str | None = None


@dataclass
class Generation:
    """One finished request. `finish_reason` is `stop` or `length`; `flags` carries backend notes
    (e.g. `recovered` when the answer was completed after hitting the token limit)."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    flags: dict[str, Any] = field(default_factory=dict)


class BackendError(RuntimeError):
    """This request failed after the backend's own retries: the scheduler fails its window (kept in its
    order, journaled as failed) and goes on; `--resume` retries it."""


class ContextTooLong(BackendError):
    """The prompt plus the new tokens do not fit the model's context. The scheduler shortens the window's
    passages and tries again; `prompt_tokens` and `context` are the counts the backend learned, if any."""

    def __init__(self, message: str, prompt_tokens: int | None = None, context: int | None = None) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.context = context


class BackendFatal(RearankError):
    """The backend can serve no request of this run (a dead engine, a server that refuses every request):
    the scheduler stops the run at once, journal kept, exit status 1. `resumable` says whether the same
    command can go on with `--resume` once the cause is gone (a dead engine: yes; a wrong flag: no, the
    message says what to fix)."""

    def __init__(self, message: str, resumable: bool = False) -> None:
        super().__init__(message)
        self.resumable = resumable


class Backend:
    """Base class: subclasses implement `agenerate`; `start` may check reachability before any work.

    The scheduler reads only what is declared here: `context_length` (to fit prompts), `preferred_inflight`
    (requests to keep in flight when `--max-inflight` is not given), `count_prompt_tokens` and `agenerate`."""

    name = "base"
    #: the model's context window in tokens, when the backend knows it (prompt length guard)
    context_length: int | None = None
    #: how many requests the backend serves best at once (None: the scheduler's default)
    preferred_inflight: int | None = None

    async def start(self) -> None:
        """Prepare the backend (load weights, check a server); raise with a clear message on failure."""

    async def agenerate(self, request: Request) -> Generation:
        """Generate one completion for a request."""
        raise NotImplementedError

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int | None:
        """Tokens of the chat prompt after the chat template, or None when the backend cannot tell."""
        return None

    async def close(self) -> None:
        """Release engines, threads and connections."""

    def describe(self) -> dict[str, Any]:
        """Provenance: backend name, model, and the versions that matter."""
        return {"backend": self.name}

    def generate_batch(self, requests: Sequence[Request]) -> list[Generation]:
        """Synchronous helper: start, run `requests` concurrently, close; results in order."""

        async def run() -> list[Generation]:
            await self.start()
            try:
                return list(await asyncio.gather(*(self.agenerate(request) for request in requests)))
            finally:
                await self.close()

        return asyncio.run(run())


class NullBackend(Backend):
    """No backend: what a run drives when every window is replayed from its journal (no model is loaded).
    A request reaching it is a bug, reported as `BackendFatal`."""

    name = "none"

    async def agenerate(self, request: Request) -> Generation:
        """Never called: a run with windows left to generate loads a real backend."""
        raise BackendFatal("no backend is loaded: this run had no window left to generate")
