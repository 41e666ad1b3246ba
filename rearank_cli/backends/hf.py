"""The transformers backend: `generate` on left-padded batches, CPU or GPU, the model's chat template.

Requests submitted concurrently (by the scheduler, across queries) are collected by one worker thread
into batches of up to `batch_size` with the same sampling settings, so the event loop never blocks on
the model. A `.gguf` file path is loaded through transformers' `gguf_file=` (dequantized), which is how
the offline CPU demo runs SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rearank_cli.backends.base import (
    Backend,
    BackendError,
    BackendFatal,
    Generation,
    Message,
    Request,
    Sampling,
    template_args,
)
from rearank_cli.errors import RearankError, require
from rearank_cli.model_check import context_length
from rearank_cli.provenance import installed

log = logging.getLogger("rearank")

DTYPES = ("auto", "float32", "bfloat16", "float16")
#: how long `close` waits for a running batch (a second SIGTERM/SIGINT exits at once)
CLOSE_TIMEOUT_S = 900.0


@dataclass
class _Queued:
    """A request waiting for the worker thread, with the future its caller awaits."""

    messages: Sequence[Message]
    sampling: Sampling
    template: Mapping[str, Any]
    future: asyncio.Future[Generation]
    loop: asyncio.AbstractEventLoop
    cancelled: threading.Event = field(default_factory=threading.Event)


class HfBackend(Backend):
    """transformers `generate` with dynamic batching of concurrent requests on a worker thread."""

    name = "hf"

    def __init__(self, model: str, dtype: str = "auto", device: str = "auto", batch_size: int = 8,
                 max_wait_s: float = 0.005, trust_remote_code: bool = False, lora: str | None = None) -> None:
        """`lora`: a PEFT LoRA adapter folder, merged into the weights at load (same outputs, no adapter
        overhead per token)."""
        if dtype not in DTYPES:
            raise RearankError(f"unknown --dtype {dtype!r} for the hf backend; choose one of {', '.join(DTYPES)}")
        if batch_size < 1:
            raise RearankError("--batch-size must be at least 1")
        self.model_name = model
        self.dtype_name = dtype
        self.device_name = device
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.trust_remote_code = trust_remote_code
        self.lora = lora
        #: keep two batches' worth in flight: one generating, one queued
        self.preferred_inflight = 2 * batch_size
        self.context_length: int | None = None
        self._queue: queue.Queue[_Queued | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        #: set when the worker thread died: every later request fails with it
        self._dead: BackendFatal | None = None
        self._current: list[_Queued] = []
        self._busy = threading.Event()
        #: fast tokenizers are not safe to use from two threads at once ("Already borrowed")
        self._tokenizer_lock = threading.Lock()
        self.tokenizer: Any = None
        self.model: Any = None
        self.device: str = "cpu"
        self.batches = 0

    # -- loading -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load tokenizer and weights (in a thread) and start the batching worker."""
        if self._thread is not None:
            return
        await asyncio.to_thread(self._load)
        self._thread = threading.Thread(target=self._serve, name="rearank-hf", daemon=True)
        self._thread.start()

    def _source(self) -> tuple[str, dict[str, Any]]:
        """(directory or hub id, extra from_pretrained kwargs) for `self.model_name`."""
        if self.model_name.endswith(".gguf"):
            if not os.path.isfile(self.model_name):
                raise RearankError(f"GGUF file not found: {self.model_name}")
            require("gguf", "hf")
            directory, filename = os.path.split(os.path.abspath(self.model_name))
            return directory, {"gguf_file": filename}
        return self.model_name, {}

    def _load(self) -> None:
        torch = require("torch", "hf")
        transformers = require("transformers", "hf")
        source, extra = self._source()
        if self.device_name == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        else:
            self.device = self.device_name
        dtype: Any = self.dtype_name
        if dtype == "auto" and self.device == "cpu":
            dtype = torch.float32  # bf16 matmuls are slow on most CPUs
        elif dtype != "auto":
            dtype = getattr(torch, dtype)
        kwargs = dict(extra, trust_remote_code=self.trust_remote_code)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
            model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
        except OSError as exc:
            raise RearankError(f"cannot load model {self.model_name!r}: {exc}") from None
        if self.lora:
            model = _merge_lora(model, self.lora)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if not getattr(tokenizer, "chat_template", None):
            raise RearankError(f"model {self.model_name!r} has no chat template; use an instruct/chat model")
        model.to(self.device)
        model.eval()
        self.tokenizer, self.model = tokenizer, model
        self.context_length = context_length(model.config, tokenizer)
        self._eos = _eos_ids(model, tokenizer)

    # -- requests ------------------------------------------------------------------------------

    async def agenerate(self, request: Request) -> Generation:
        """Queue one request for the worker and wait for its completion."""
        if self._thread is None:
            raise RuntimeError("HfBackend.start() was not awaited")
        if self._dead is not None:
            raise self._dead
        loop = asyncio.get_running_loop()
        queued = _Queued(request.messages, request.sampling, request.chat_template_kwargs, loop.create_future(), loop)
        queued.future.add_done_callback(lambda f: queued.cancelled.set() if f.cancelled() else None)
        self._queue.put(queued)
        if self._dead is not None:  # the worker died between the check above and the put
            _resolve(queued, error=self._dead)
        generation: Generation = await queued.future
        return generation

    def prompt_text(self, messages: Sequence[Message], chat_template_kwargs: Mapping[str, Any] | None = None) -> str:
        """The chat template applied with the generation prompt (or continuing a last assistant message) and
        the prompt family's `chat_template_kwargs`."""
        text: str = self.tokenizer.apply_chat_template(list(messages), tokenize=False,
                                                       **template_args(messages, chat_template_kwargs))
        return text

    def count_prompt_tokens(self, messages: Sequence[Message],
                            chat_template_kwargs: Mapping[str, Any] | None = None) -> int | None:
        """Prompt tokens after the chat template."""
        if self.tokenizer is None:
            return None
        with self._tokenizer_lock:
            text = self.prompt_text(messages, chat_template_kwargs)
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- the worker thread -------------------------------------------------------------------

    def _serve(self) -> None:
        """The worker thread: if it dies (anything `_run_group` does not catch), every waiting and later
        request fails at once instead of waiting forever."""
        try:
            self._worker()
        except BaseException as exc:  # noqa: BLE001 - reported to every waiting request
            self._dead = BackendFatal(f"the hf generation thread died: {type(exc).__name__}: {exc}")
            log.error("%s", self._dead)
            for request in self._current:
                _resolve(request, error=self._dead)
            self._fail_queued(self._dead)

    def _fail_queued(self, error: Exception) -> None:
        """Fail every request still in the queue with `error`."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                _resolve(item, error=error)

    def _worker(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._current = batch
            groups: dict[Sampling, list[_Queued]] = {}
            for request in batch:
                if not request.cancelled.is_set():
                    groups.setdefault(request.sampling, []).append(request)
            self._busy.set()
            try:
                for group in groups.values():
                    if self._closing.is_set():
                        for request in group:
                            _resolve(request, error=BackendError("backend closed"))
                    else:
                        self._run_group(group)
            finally:
                self._busy.clear()

    def _next_batch(self) -> list[_Queued] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.batch_size:
            try:
                item = self._queue.get(timeout=max(deadline - time.monotonic(), 1e-4))
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            batch.append(item)
        return batch

    def _run_group(self, group: list[_Queued]) -> None:
        try:
            results = self._generate(group)
        except Exception as exc:  # noqa: BLE001 - a failed batch: retry one by one, then fail the request
            if len(group) > 1 and not self._closing.is_set():
                log.warning("hf batch of %d failed (%s); retrying one by one", len(group), exc)
                for request in group:
                    self._run_group([request])
                return
            for request in group:
                _resolve(request, error=BackendError(f"generation failed: {type(exc).__name__}: {exc}"))
            return
        for request, result in zip(group, results, strict=True):
            _resolve(request, result=result)

    def _generate(self, group: list[_Queued]) -> list[Generation]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        closing = self._closing

        class StopWhenCancelled(StoppingCriteria):
            """Ends generation early when every request of the batch was cancelled (SIGTERM)."""

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                stop = closing.is_set() or all(r.cancelled.is_set() for r in group)
                return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

        sampling = group[0].sampling
        with self._tokenizer_lock:
            texts = [self.prompt_text(request.messages, request.template) for request in group]
            encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = encoded.to(self.device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens, "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self._eos, "stopping_criteria": StoppingCriteriaList([StopWhenCancelled()]),
        }
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            output = self.model.generate(**encoded, **kwargs)
        self.batches += 1
        width = encoded["input_ids"].shape[1]
        prompt_lengths = encoded["attention_mask"].sum(dim=1).tolist()
        results = []
        for row, prompt_tokens in zip(output[:, width:].tolist(), prompt_lengths, strict=True):
            end = next((i + 1 for i, token in enumerate(row) if token in self._eos), None)
            tokens = row if end is None else row[:end]
            with self._tokenizer_lock:
                text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            results.append(Generation(text=text, prompt_tokens=int(prompt_tokens), completion_tokens=len(tokens),
                                      finish_reason="length" if end is None else "stop"))
        return results

    # -- lifecycle ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the worker (a running batch ends at its next token) and fail what is still queued."""
        if self._thread is None:
            return
        self._closing.set()
        self._queue.put(None)
        if self._busy.is_set():
            log.info("waiting for the running batch to stop (it ends after its current forward pass)")
        # the thread must end before the interpreter does: torch aborts the process otherwise
        await asyncio.to_thread(self._thread.join, CLOSE_TIMEOUT_S)
        self._thread = None
        self._fail_queued(BackendError("backend closed"))

    def describe(self) -> dict[str, Any]:
        """Backend, model, device, dtype, batching and library versions."""
        info: dict[str, Any] = {
            "backend": self.name, "model": self.model_name, "device": self.device, "dtype": self.dtype_name,
            "batch_size": self.batch_size, "context_length": self.context_length, "batches": self.batches,
        }
        if self.lora:
            info["lora"] = {"path": self.lora, "merged": True}
        info.update(installed(("torch", "transformers", "gguf")))
        if self.model is not None:
            info["model_dtype"] = str(self.model.dtype).replace("torch.", "")
        return info


def _merge_lora(model: Any, adapter: str) -> Any:
    """The model with a PEFT LoRA adapter merged into its weights."""
    peft = require("peft", "train")
    try:
        return peft.PeftModel.from_pretrained(model, adapter).merge_and_unload()
    except (OSError, ValueError, RuntimeError) as exc:
        raise RearankError(f"cannot apply the LoRA adapter {adapter}: {type(exc).__name__}: {exc}") from None


def _resolve(request: _Queued, result: Generation | None = None, error: Exception | None = None) -> None:
    """Hand a result or an error to the request's event loop (ignored when the request was cancelled)."""

    def apply() -> None:
        if request.future.done():
            return
        if error is not None or result is None:
            request.future.set_exception(error or RuntimeError("no result"))
        else:
            request.future.set_result(result)

    with contextlib.suppress(RuntimeError):  # the loop is already closed
        request.loop.call_soon_threadsafe(apply)


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """All end-of-sequence ids: the generation config's (one or several) plus the tokenizer's."""
    ids = getattr(model.generation_config, "eos_token_id", None)
    found = list(ids) if isinstance(ids, list | tuple) else ([ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in found:
        found.append(tokenizer.eos_token_id)
    return found
