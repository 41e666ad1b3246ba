"""Probes for `rearank doctor`, each run in a child process (`python -m rearank_cli.diagnostics.probes
NAME`, side by side), so a crash, a CUDA initialisation or the JVM never touches the caller's process.
A probe prints one line, `REARANK-PROBE {json}`; a probe that fails or crashes gives `{"error": ...}`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

PROBE_TIMEOUT_S = 180.0
PROBE_MARK = "REARANK-PROBE "


def probe_torch() -> dict[str, Any]:
    """torch's build, the accelerators it sees, and whether transformers imports."""
    import torch

    info: dict[str, Any] = {"version": torch.__version__, "cuda": torch.version.cuda,
                            "hip": getattr(torch.version, "hip", None), "cuda_available": torch.cuda.is_available()}
    if info["cuda_available"]:
        info["devices"] = [
            f"{torch.cuda.get_device_name(i)} ({torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB)"
            for i in range(torch.cuda.device_count())
        ]
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        info["transformers_error"] = f"{type(exc).__name__}: {exc}"
    return info


def probe_vllm() -> dict[str, Any]:
    """vLLM's platform, the import that a mismatched torchvision breaks, and its LoRA kernels."""
    import vllm
    from vllm import LLM  # noqa: F401  (fails with `torchvision::nms does not exist` next to a wrong torchvision)
    from vllm.platforms import current_platform

    info: dict[str, Any] = {"version": vllm.__version__, "platform": current_platform.device_type}
    if current_platform.is_cuda_alike():
        import vllm._C  # noqa: F401  (the CUDA kernels: fails when built for another CUDA / torch)
    try:
        info["lora"] = current_platform.get_punica_wrapper().rsplit(".", 1)[-1]
    except Exception as exc:  # noqa: BLE001
        info["lora_error"] = f"{type(exc).__name__}: {exc}"
    return info


def probe_java() -> dict[str, Any]:
    """Start the JVM the way `rearank retrieve` does and import pyserini's searcher."""
    from rearank_cli.lucene import java

    java.start(vllm_guard=False)  # no vLLM in this process
    version = str(java.autoclass("java.lang.System").getProperty("java.version"))
    from pyserini.search.lucene import LuceneSearcher  # noqa: F401

    return {"java": version, "java_home": java.java_home(), "jar": os.path.basename(java.anserini_jar())}


PROBES: dict[str, Callable[[], dict[str, Any]]] = {"torch": probe_torch, "vllm": probe_vllm, "java": probe_java}


def probe_main(name: str) -> None:
    try:
        result = PROBES[name]()
    except BaseException as exc:  # noqa: BLE001 - the parent reports it
        result = {"error": f"{type(exc).__name__}: {exc}".strip()}
    sys.stdout.write(PROBE_MARK + json.dumps(result) + "\n")
    sys.stdout.flush()


def run_probes(names: list[str], timeout: float = PROBE_TIMEOUT_S) -> dict[str, dict[str, Any]]:
    """Run probes in child processes side by side; each returns its JSON (or `{"error": ...}`)."""
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    children = {
        name: subprocess.Popen([sys.executable, "-m", "rearank_cli.diagnostics.probes", name], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
        for name in names
    }
    results = {}
    for name, child in children.items():
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            results[name] = {"error": f"timed out after {timeout:.0f} s"}
            continue
        results[name] = probe_result(out, err, child.returncode)
    return results


def probe_result(out: str, err: str, code: int) -> dict[str, Any]:
    for line in reversed(out.splitlines()):
        if line.startswith(PROBE_MARK):
            result: dict[str, Any] = json.loads(line[len(PROBE_MARK):])
            return result
    last = next((line for line in reversed(err.strip().splitlines()) if line.strip()), "")
    how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
    return {"error": f"the probe process crashed ({how}){': ' + last if last else ''}"}


if __name__ == "__main__":
    probe_main(sys.argv[1])
