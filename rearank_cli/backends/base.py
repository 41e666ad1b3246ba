"""The one interface every generation backend implements.

A backend turns a `Request` (chat messages, sampling settings, and what the prompt asks for) into a text
and token counts. It never reads the prompt text back to learn the window size, the query or the answer
format: the request says so. It knows nothing of runs or files; the scheduler knows nothing of which
backend it drives. Requests are async so a scheduler can keep many in flight; `generate_batch` is the
sync convenience.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rearank_cli.errors import BackendError as BackendError  # the backends' errors, re-exported
from rearank_cli.errors import BackendFatal as BackendFatal
from rearank_cli.errors import ContextTooLong as ContextTooLong
from rearank_cli.settings.rerank import PAPER_MAX_TOKENS, PAPER_TEMPERATURE, PAPER_TOP_P, RerankOptions

Message = dict[str, str]


@dataclass(frozen=True)
class Sampling:
    """Decoding settings for one request (greedy by default, as the paper)."""

    max_tokens: int = PAPER_MAX_TOKENS
    temperature: float = PAPER_TEMPERATURE
    top_p: float = PAPER_TOP_P
    seed: int | None = RerankOptions.seed


@dataclass(frozen=True)
class Request:
    """One generation request (see `prompts.base.PromptFamily.request`, which builds it for a window).

    `window_size`: the passages in the window (0 when not a window); `answer_tags`: the prompt asks for
    `<think>`/`<answer>` tags; `session`: requests with the same session (a query's windows) may share a
    cache or a replica; `answer_regex`: the grammar a cut-off answer may be completed under, or None;
    `chat_template_kwargs`: keywords for the model's chat template (e.g. `enable_thinking`). A last message
    of the assistant is a prefix the model continues (`continues`)."""

    messages: Sequence[Message]
    sampling: Sampling = field(default_factory=Sampling)
    window_size: int = 0
    answer_tags: bool = False
    session: str | None = None
    answer_regex: str | None = None
    chat_template_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def continues(self) -> bool:
        """The messages end with an assistant turn the model continues (no new generation prompt)."""
        return bool(self.messages) and self.messages[-1].get("role") == "assistant"


def template_args(messages: Sequence[Message], chat_template_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The keywords of `tokenizer.apply_chat_template` for `messages`: the generation prompt, or, when the
    last message is the assistant's, continuing it; plus the family's `chat_template_kwargs`."""
    continues = bool(messages) and messages[-1].get("role") == "assistant"
    args: dict[str, Any] = {"add_generation_prompt": not continues}
    if continues:
        args["continue_final_message"] = True
    args.update(chat_template_kwargs or {})
    return args


@dataclass
class Generation:
    """One finished request. `finish_reason` is `stop` or `length`; `flags` carries backend notes
    (e.g. `recovered` when the answer was completed after hitting the token limit)."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    flags: dict[str, Any] = field(default_factory=dict)


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

    def count_prompt_tokens(self, messages: Sequence[Message],
                            chat_template_kwargs: Mapping[str, Any] | None = None) -> int | None:
        """Tokens of the chat prompt after the chat template (with `chat_template_kwargs`), or None when the
        backend cannot tell."""
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
