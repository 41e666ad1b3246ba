"""Any OpenAI-compatible `/v1/chat/completions` server (vLLM serve, SGLang, a hosted API).

Concurrent requests over one HTTP/1.1 connection pool (httpx), retries with exponential backoff and
jitter on 429, 5xx, timeouts, connection errors and 200s whose body is not a whole completion (a
`Retry-After` header is honoured), the API key from an environment variable, and token counts from the
server's `usage`. A context-length error is `ContextTooLong` (the scheduler shortens the window); any
other 4xx is `BackendFatal` (every window would repeat it), its one line naming the cause the server's
answer shows: the API key, a model the server does not serve (`UnknownModel`, exit 2, as at start), a
decoding parameter, an endpoint the server lacks. `start` checks the server (`GET /models`) before any
work: a wrong URL or a model it does not serve fails at once with one line. No local tokenizer or
weights are needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rearank_cli.backends.base import (
    Backend,
    BackendError,
    BackendFatal,
    ContextTooLong,
    Generation,
    Message,
    Request,
    Sampling,
)
from rearank_cli.errors import InputError, RearankError
from rearank_cli.provenance import installed

log = logging.getLogger("rearank")

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
#: how servers word "the prompt does not fit": vLLM/SGLang/OpenAI ("maximum context length is 4096
#: tokens"), llama.cpp ("exceeds the available context size"), OpenAI's code `context_length_exceeded`
CONTEXT_RE = re.compile(r"maximum context length is (\d+)|context[_ ]length[_ ]exceeded|exceeds the available "
                        r"context size|context window", re.IGNORECASE)
#: the prompt's size as the server counted it, in the wordings above
#: how servers word "no such model": vLLM / OpenAI ("The model `x` does not exist"), Ollama ('model "x" not
#: found'), LiteLLM ("Invalid model name passed"), others ("unknown model", "model ... is not served")
UNKNOWN_MODEL_RE = re.compile(r"\bmodel\b.{0,200}?\b(?:does not exist|doesn't exist|not found|is not served|"
                              r"not available|not loaded)|\b(?:unknown|invalid|no such) model\b",
                              re.IGNORECASE)
#: the decoding parameters rearank sends, and the flag that sets each
SAMPLING_FLAGS = {"max_tokens": "--max-tokens", "temperature": "--temperature", "top_p": "--top-p", "seed": "--seed"}
PROMPT_TOKENS_RE = re.compile(r"(\d+) (?:input )?tokens (?:in the messages|in the prompt)|prompt contains "
                              r"(?:at least )?(\d+) input tokens|request has (\d+) input tokens|messages resulted "
                              r"in (\d+) tokens", re.IGNORECASE)


class OpenAIBackend(Backend):
    """Chat completions over HTTP with retries; `max_inflight` bounds the connection pool."""

    name = "openai"

    def __init__(self, model: str, base_url: str, api_key_env: str | None = None, max_inflight: int = 16,
                 retries: int = 5, timeout: float = 600.0, backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 check_timeout: float = 10.0) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.max_inflight = max_inflight
        self.preferred_inflight = max_inflight
        self.retries = retries
        self.timeout = timeout
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.check_timeout = check_timeout
        self.context_length: int | None = None
        self.retried = 0
        #: the model ids the server lists at `GET /models` (None until `start` read them)
        self.served_models: list[str] | None = None
        self._client: Any = None
        self._headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env or DEFAULT_KEY_ENV)
        if api_key_env and not key:
            raise InputError(f"--api-key-env {api_key_env}: that environment variable is not set")
        if key:
            self._headers["Authorization"] = f"Bearer {key}"

    async def start(self) -> None:
        """Open the connection pool and check the server answers `GET /models` (before any work)."""
        import httpx  # a dependency of `openai`, which rearank requires
        limits = httpx.Limits(max_connections=self.max_inflight, max_keepalive_connections=self.max_inflight)
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout, connect=30.0), limits=limits,
                                         headers=self._headers)
        url = f"{self.base_url}/models"
        try:
            response = await self._client.get(url, timeout=self.check_timeout)
        except httpx.HTTPError as exc:
            await self.close()
            raise RearankError(f"cannot reach the server at {self.base_url} ({type(exc).__name__}: {exc}); "
                               "is it running, and is --base-url right (it usually ends in /v1)?") from None
        if response.status_code in (401, 403):
            await self.close()
            raise RearankError(f"the server at {self.base_url} refused the API key (HTTP {response.status_code}); "
                               f"check --api-key-env (default {DEFAULT_KEY_ENV})")
        if response.status_code == 404 and not self.base_url.endswith("/v1"):
            await self.close()
            raise InputError(f"--base-url {self.base_url}: GET {url} answered HTTP 404; "
                             f"did you mean {self.base_url}/v1?")
        if response.status_code == 200:
            try:
                self._read_models(response)
            except InputError:
                await self.close()
                raise
        else:
            log.warning("%s answered HTTP %d; trying chat completions anyway", url, response.status_code)

    def _read_models(self, response: Any) -> None:
        """Take the context length from `/models` (vLLM's `max_model_len`); a model the server does not
        list is a usage error (exit 2) naming what it serves."""
        try:
            models = response.json().get("data") or []
        except (ValueError, AttributeError):
            return
        ids = [str(item.get("id")) for item in models if isinstance(item, dict)]
        self.served_models = ids
        for item in models:
            if isinstance(item, dict) and item.get("id") == self.model and item.get("max_model_len"):
                self.context_length = int(item["max_model_len"])  # vLLM reports it
        if ids and self.model not in ids:
            shown = ", ".join(ids[:10]) + (f" ... ({len(ids) - 10} more)" if len(ids) > 10 else "")
            raise InputError(f"--model {self.model} is not served by {self.base_url}; it serves: {shown}")

    def payload(self, messages: Sequence[Message], sampling: Sampling,
                chat_template_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The request body: greedy when temperature is 0; a prompt family's chat-template keywords go in
        `chat_template_kwargs`, and a last assistant message is continued (vLLM's and SGLang's extra fields,
        sent only when used)."""
        body: dict[str, Any] = {
            "model": self.model, "messages": list(messages), "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature, "top_p": sampling.top_p, "n": 1,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if chat_template_kwargs:
            body["chat_template_kwargs"] = dict(chat_template_kwargs)
        if messages and messages[-1].get("role") == "assistant":
            body.update(add_generation_prompt=False, continue_final_message=True)
        return body

    async def agenerate(self, request: Request) -> Generation:
        """POST one chat completion, retrying transient failures (429, 5xx, timeouts, dropped connections,
        a 200 whose body is not a whole completion); BackendError when they persist, ContextTooLong when
        the server says the prompt does not fit, BackendFatal on a permanent 4xx (no window can succeed)."""
        import httpx

        if self._client is None:
            raise RuntimeError("OpenAIBackend.start() was not awaited")
        body = self.payload(request.messages, request.sampling, request.chat_template_kwargs)
        url = f"{self.base_url}/chat/completions"
        last = "no attempt"
        for attempt in range(self.retries + 1):
            retry_after = None
            try:
                response = await self._client.post(url, json=body)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    try:
                        return self._generation(response, request.answer_tags)
                    except ValueError as exc:  # a proxy cut the body, or sent something else
                        last = str(exc)
                else:
                    last = f"HTTP {response.status_code}: {response.text[:300]}"
                    if response.status_code not in RETRY_STATUS:
                        raise self.refused(response.status_code, response.text)
                    retry_after = _retry_after(response.headers.get("retry-after"))
            if attempt == self.retries:
                break
            self.retried += 1
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            log.debug("retrying in %.1f s after %s", delay, last)
            await asyncio.sleep(delay)
        raise BackendError(f"failed after {self.retries + 1} attempts: {last}")

    def refused(self, status: int, text: str) -> Exception:
        """The error for a status that retrying cannot fix: the context is too small (this window), or a
        request every window would repeat (stop the run, naming the cause the server's answer shows)."""
        detail = " ".join(_error_message(text).split())[:300]
        too_long = context_error(detail)
        if too_long is not None:
            return too_long
        if status >= 500:
            return BackendError(f"HTTP {status}: {detail}")
        said = f"HTTP {status}: {detail}"
        if status in (401, 403):
            return BackendFatal(f"the server at {self.base_url} refused the API key ({said}); "
                                f"check --api-key-env (default {DEFAULT_KEY_ENV})")
        if _error_code(text) == "model_not_found" or UNKNOWN_MODEL_RE.search(detail):
            listed = ("it lists no models at GET /models, so this showed at the first request"
                      if not self.served_models else f"GET /models lists: {', '.join(self.served_models[:10])}")
            return UnknownModel(f"--model {self.model} is not served by {self.base_url} ({said}); {listed}")
        named = [flag for name, flag in SAMPLING_FLAGS.items() if re.search(rf"\b{name}\b", detail)]
        if named:
            return BackendFatal(f"the server at {self.base_url} refused a decoding parameter ({said}); "
                                f"check {' and '.join(named)}")
        if status in (404, 405):
            return BackendFatal(f"the server at {self.base_url} has no chat completions endpoint ({said}); "
                                f"check --base-url {self.base_url} (it usually ends in /v1) and --model {self.model}")
        return BackendFatal(f"the server at {self.base_url} refused the request ({said}); "
                            "check --model and the decoding flags (--max-tokens, --temperature, --top-p, --seed)")

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter, capped."""
        return random.uniform(0.5, 1.0) * min(float(self.max_backoff_s), float(self.backoff_s * 2**attempt))

    @staticmethod
    def _generation(response: Any, answer_tags: bool) -> Generation:
        """The completion of a 200 response; with `answer_tags` (the prompt asks for `<think>`), reasoning
        that a server's reasoning parser split off is put back in `<think>` for the ranking parser."""
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed response ({type(exc).__name__}: {exc}): {response.text[:200]!r}") from None
        text = message.get("content") or ""
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if answer_tags and reasoning and "<think>" not in text:
            text = f"<think>{reasoning}</think>{text}"
        usage = data.get("usage") or {}
        return Generation(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        )

    async def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):
                await client.aclose()

    def describe(self) -> dict[str, Any]:
        """Backend, server, model and client version (never the key)."""
        info: dict[str, Any] = {
            "backend": self.name, "model": self.model, "base_url": self.base_url,
            "api_key_env": self.api_key_env or DEFAULT_KEY_ENV, "max_inflight": self.max_inflight,
            "retries": self.retries, "retried_requests": self.retried, "context_length": self.context_length,
        }
        info.update(installed(("httpx",)))
        return info


def _retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (numbers only; capped at 120 s)."""
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), 120.0)
    except ValueError:
        return None


class UnknownModel(BackendFatal):
    """The server answered that it does not serve `--model`: a usage error (exit 2), as when `GET /models`
    shows it before any work."""

    exit_code = 2


def _error_code(text: str) -> str | None:
    """The `code` of an OpenAI-style error body (`{"error": {"code": "model_not_found"}}`), if any."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    error = data.get("error", data) if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code) if code is not None else None


def _error_message(text: str) -> str:
    """The `message` of an OpenAI-style error body (`{"error": {"message": ...}}` or `{"message": ...}`),
    FastAPI's `{"detail": ...}`, else the text itself."""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, dict) and isinstance(error.get("detail"), str):  # FastAPI's own errors
        return str(error["detail"])
    return str(error) if isinstance(error, str) else text


def context_error(message: str) -> ContextTooLong | None:
    """A ContextTooLong when a server's error message says the prompt does not fit its context, with
    the context and prompt sizes it names; None for any other error."""
    match = CONTEXT_RE.search(message)
    if match is None:
        return None
    context = int(match.group(1)) if match.group(1) else None
    counted = PROMPT_TOKENS_RE.search(message)
    prompt_tokens = int(next(g for g in counted.groups() if g)) if counted else None
    return ContextTooLong(f"the server's context is too small: {message}", prompt_tokens, context)
