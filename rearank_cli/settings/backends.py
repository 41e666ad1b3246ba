"""The flags of each generation backend (`rearank rerank --backend NAME`), declared once.

Each class lists one backend's own flags and turns them, with the rerank flags every backend reads
(`--dtype`, `--seed`, `--lora`, `--max-inflight`), into the keyword arguments of its constructor.
`BACKENDS` maps a `--backend` name to its settings class; `backends.load_backend` imports the class
named by `implementation`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from rearank_cli.errors import InputError
from rearank_cli.settings.base import Settings, fields, setting
from rearank_cli.settings.rerank import RerankOptions

log = logging.getLogger("rearank")

#: the rerank settings that only some backends read (each backend's `reads` names those it does)
BACKEND_READS = ("dtype",)
#: `--device` of the hf backend (`cuda:N`: any GPU number)
DEVICES = ("auto", "cpu", "cuda", "cuda:N")


@dataclass(frozen=True, kw_only=True)
class BackendOptions(Settings):
    """Base of the per-backend settings."""

    #: "module:Class" of the backend
    implementation: ClassVar[str] = ""

    #: the rerank settings (besides those every backend reads) this backend reads
    reads: ClassVar[tuple[str, ...]] = ()

    def backend_kwargs(self, rerank: RerankOptions) -> dict[str, Any]:
        """The backend constructor's keyword arguments (besides the model)."""
        raise NotImplementedError

    @classmethod
    def note_unused(cls, values: Mapping[str, Any], explicit: set[str]) -> None:
        """One warning line naming the options given on the command line or in --config that the chosen
        `--backend` does not read (another backend's flags; `--dtype` with openai). Only the chosen
        backend's class speaks, so there is one line for all of them."""
        chosen = BACKENDS.get(values.get("backend", RerankOptions.backend))
        if cls is not chosen:
            return
        unused = [spec.flag(field.name) for other in BACKENDS.values() if other is not cls
                  for field, spec, _ in fields(other) if field.name in explicit]
        unused += [spec.flag(field.name) for field, spec, _ in fields(RerankOptions)
                   if field.name in BACKEND_READS and field.name in explicit and field.name not in cls.reads]
        if unused:
            log.warning("%s %s not read by --backend %s: ignored", ", ".join(unused),
                        "is" if len(unused) == 1 else "are", values.get("backend", RerankOptions.backend))


@dataclass(frozen=True, kw_only=True)
class VllmOptions(BackendOptions):
    """`--backend vllm` (the default)."""

    command = "rerank"
    implementation = "rearank_cli.backends.vllm:VllmBackend"
    reads = ("dtype",)

    tensor_parallel_size: int = setting(1, "--tensor-parallel-size", min=1,
                                        help="vllm: the GPUs of each model replica.")
    data_parallel_size: int = setting(1, "--data-parallel-size", min=1, help="vllm: the number of model replicas.")
    gpu_memory_utilization: float | None = setting(None, "--gpu-memory-utilization", min=0.0, max=1.0,
                                                   help="vllm: the share of GPU memory the engine may take, "
                                                   "more than 0 and at most 1 [default: vLLM's].")
    max_model_len: int | None = setting(None, "--max-model-len", min=1, help="vllm: the context length "
                                            "[default: the model's].")
    enforce_eager: bool = setting(False, "--enforce-eager", help="vllm: run eagerly, without CUDA graphs.")
    max_num_seqs: int | None = setting(None, "--max-num-seqs", min=1, help="vllm: the most sequences per engine step.")
    no_recovery: bool = setting(False, "--no-recovery", help="vllm: do not complete answers cut off by --max-tokens.")
    max_lora_rank: int | None = setting(
        None, "--max-lora-rank", min=1, help="vllm: the largest LoRA rank the engine accepts [default: the adapter's "
        "rank, rounded up to one vLLM accepts].")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gpu_memory_utilization == 0:
            raise InputError("invalid value for --gpu-memory-utilization: 0 leaves the engine no memory (give a "
                             "share more than 0, at most 1)")

    def backend_kwargs(self, rerank: RerankOptions) -> dict[str, Any]:
        """VllmBackend's keyword arguments."""
        return {
            "tensor_parallel_size": self.tensor_parallel_size, "data_parallel_size": self.data_parallel_size,
            "gpu_memory_utilization": self.gpu_memory_utilization, "max_model_len": self.max_model_len,
            "dtype": rerank.dtype, "enforce_eager": self.enforce_eager, "max_num_seqs": self.max_num_seqs,
            "recovery": not self.no_recovery, "seed": rerank.request_seed, "lora": rerank.lora,
            "max_lora_rank": self.max_lora_rank,
        }


@dataclass(frozen=True, kw_only=True)
class HfOptions(BackendOptions):
    """`--backend hf` (transformers)."""

    command = "rerank"
    implementation = "rearank_cli.backends.hf:HfBackend"
    reads = ("dtype",)

    device: str = setting("auto", "--device", choices=DEVICES, help="hf: the device to run on: cpu, cuda, cuda:N or "
                          "auto.")
    batch_size: int = setting(8, "--batch-size", min=1, help="hf: the most requests per generate() batch.")

    def backend_kwargs(self, rerank: RerankOptions) -> dict[str, Any]:
        """HfBackend's keyword arguments."""
        return {"dtype": rerank.dtype, "device": self.device, "batch_size": self.batch_size, "lora": rerank.lora}


@dataclass(frozen=True, kw_only=True)
class OpenAIOptions(BackendOptions):
    """`--backend openai` (any OpenAI-compatible server)."""

    command = "rerank"
    implementation = "rearank_cli.backends.openai_api:OpenAIBackend"

    base_url: str | None = setting(None, "--base-url", envvar="OPENAI_BASE_URL",
                                   help="openai: the OpenAI-compatible server, e.g. http://localhost:8000/v1.")
    api_key_env: str | None = setting(
        None, "--api-key-env", help="openai: the environment variable that holds the API key (default "
        "OPENAI_API_KEY; optional for local servers).")
    retries: int = setting(5, "--retries", min=0, help="openai: the retries on 429/5xx/connection errors.")
    request_timeout: float = setting(600.0, "--request-timeout", min=0.0,
                                     help="openai: the seconds to wait for each request (more than 0).")
    #: requests in flight when --max-inflight is not given
    default_inflight: ClassVar[int] = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.request_timeout == 0:
            raise InputError("invalid value for --request-timeout: 0 seconds (give more than 0)")

    def backend_kwargs(self, rerank: RerankOptions) -> dict[str, Any]:
        """OpenAIBackend's keyword arguments."""
        if not self.base_url:
            raise InputError("--backend openai needs --base-url (or OPENAI_BASE_URL), e.g. http://localhost:8000/v1")
        return {"base_url": self.base_url, "api_key_env": self.api_key_env,
                "max_inflight": rerank.max_inflight or self.default_inflight, "retries": self.retries,
                "timeout": self.request_timeout}


#: `--backend` name -> its settings class (the order of RerankOptions' choices)
BACKENDS: dict[str, type[BackendOptions]] = {"vllm": VllmOptions, "hf": HfOptions, "openai": OpenAIOptions}
