"""The flags of each generation backend (`rearank rerank --backend NAME`), declared once.

Each class lists one backend's own flags and turns them, with the rerank flags every backend reads
(`--dtype`, `--seed`, `--lora`, `--max-inflight`), into the keyword arguments of its constructor.
`BACKENDS` maps a `--backend` name to its settings class; `backends.load_backend` imports the class
named by `implementation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rearank_cli.errors import InputError
from rearank_cli.settings.base import Settings, setting
from rearank_cli.settings.rerank import RerankOptions


@dataclass(frozen=True, kw_only=True)
class BackendOptions(Settings):
    """Base of the per-backend settings."""

    #: "module:Class" of the backend
    implementation: ClassVar[str] = ""

    def backend_kwargs(self, rerank: RerankOptions) -> dict[str, Any]:
        """The backend constructor's keyword arguments (besides the model)."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class VllmOptions(BackendOptions):
    """`--backend vllm` (the default)."""

    command = "rerank"
    implementation = "rearank_cli.backends.vllm:VllmBackend"

    tensor_parallel_size: int = setting(1, "--tensor-parallel-size", help="vllm: GPUs per model replica.")
    data_parallel_size: int = setting(1, "--data-parallel-size", help="vllm: model replicas.")
    gpu_memory_utilization: float | None = setting(None, "--gpu-memory-utilization", help="vllm.")
    max_model_len: int | None = setting(None, "--max-model-len", help="vllm: context length.")
    enforce_eager: bool = setting(False, "--enforce-eager", help="vllm: no CUDA graphs.")
    max_num_seqs: int | None = setting(None, "--max-num-seqs", help="vllm: max sequences per step.")
    no_recovery: bool = setting(False, "--no-recovery", help="vllm: do not complete answers cut off by --max-tokens.")
    max_lora_rank: int | None = setting(
        None, "--max-lora-rank", help="vllm: the engine's max LoRA rank [default: the adapter's rank, rounded up "
        "to one vLLM accepts].")

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

    device: str = setting("auto", "--device", help="hf: cpu | cuda | cuda:N | auto.")
    batch_size: int = setting(8, "--batch-size", help="hf: max requests per generate() batch.")

    def backend_kwargs(self, rerank: RerankOptions) -> dict[str, Any]:
        """HfBackend's keyword arguments."""
        return {"dtype": rerank.dtype, "device": self.device, "batch_size": self.batch_size, "lora": rerank.lora}


@dataclass(frozen=True, kw_only=True)
class OpenAIOptions(BackendOptions):
    """`--backend openai` (any OpenAI-compatible server)."""

    command = "rerank"
    implementation = "rearank_cli.backends.openai_api:OpenAIBackend"

    base_url: str | None = setting(None, "--base-url", envvar="OPENAI_BASE_URL",
                                   help="OpenAI-compatible server, e.g. http://localhost:8000/v1 (openai).")
    api_key_env: str | None = setting(
        None, "--api-key-env", help="Environment variable holding the API key (openai; default OPENAI_API_KEY, "
        "optional for local servers).")
    retries: int = setting(5, "--retries", help="openai: retries on 429/5xx/connection errors.")
    request_timeout: float = setting(600.0, "--request-timeout", help="openai: seconds per request.")
    #: requests in flight when --max-inflight is not given
    default_inflight: ClassVar[int] = 16

    def backend_kwargs(self, rerank: RerankOptions) -> dict[str, Any]:
        """OpenAIBackend's keyword arguments."""
        if not self.base_url:
            raise InputError("--backend openai needs --base-url (or OPENAI_BASE_URL), e.g. http://localhost:8000/v1")
        return {"base_url": self.base_url, "api_key_env": self.api_key_env,
                "max_inflight": rerank.max_inflight or self.default_inflight, "retries": self.retries,
                "timeout": self.request_timeout}


#: `--backend` name -> its settings class (the order of RerankOptions' choices)
BACKENDS: dict[str, type[BackendOptions]] = {"vllm": VllmOptions, "hf": HfOptions, "openai": OpenAIOptions}
