"""`rearank prompt`: flags from `settings.prompt.PromptOptions`; the job is `rearank_cli.jobs.prompt` (imported
lazily)."""

from __future__ import annotations

from rearank_cli.commands.options import command
from rearank_cli.settings.files import ConfigFile
from rearank_cli.settings.prompt import PromptOptions


@command(PromptOptions, config=False)
def prompt(options: PromptOptions, config: ConfigFile | None = None) -> None:
    """List the prompt families, show one (a name or a template FILE.yaml), or print the exact messages of
    one window of a run (`render RUN`)."""
    from rearank_cli.jobs.context import JobContext
    from rearank_cli.jobs.prompt import run

    run(options, JobContext())
