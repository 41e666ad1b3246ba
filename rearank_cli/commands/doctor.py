"""`rearank doctor`: flags from `settings.commands.DoctorOptions`; the job is `rearank_cli.jobs.doctor`
(imported lazily)."""

from __future__ import annotations

import typer

from rearank_cli.commands.options import command
from rearank_cli.settings.commands import DoctorOptions
from rearank_cli.settings.files import ConfigFile


@command(DoctorOptions, config=False)
def doctor(options: DoctorOptions, config: ConfigFile | None = None) -> int:
    """Check this machine for a backend: packages, torch and accelerators, vLLM, Java, the model, disk.

    Exit 0 when every check the backend needs passes (ok or warn), else 1.
    """
    from rearank_cli.jobs.context import JobContext
    from rearank_cli.jobs.doctor import run

    code = 0 if run(options, JobContext(config=config)).ready else 1
    if code:
        raise typer.Exit(code)
    return code
