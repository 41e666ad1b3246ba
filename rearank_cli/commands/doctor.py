"""`rearank doctor`: flags only; the job is `rearank_cli.jobs.doctor` (imported lazily)."""

from __future__ import annotations

import typer


def doctor(
    backend: str = typer.Option("vllm", "--backend", help="The backend to check for: vllm | hf | openai."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model id or path to look for (local folder or HF cache; never downloads) "
        "[default: rerank's le723z/Rearank-7B]; with openai, the name the server must serve."),
    base_url: str | None = typer.Option(None, "--base-url", envvar="OPENAI_BASE_URL",
                                        help="OpenAI-compatible server to check (GET /models)."),
    output: str = typer.Option(".", "--output", "-o", help="Where outputs will go (free space, write access)."),
    fmt: str = typer.Option("text", "--format", help="text (one screen) | json."),
) -> int:
    """Check this machine for a backend: packages, torch and accelerators, vLLM, Java, the model, disk.

    Exit 0 when every check the backend needs passes (ok or warn), else 1.
    """
    from rearank_cli.jobs.doctor import doctor as run_doctor

    code = run_doctor(backend, model, base_url, output, fmt)
    if code:
        raise typer.Exit(code)
    return code
