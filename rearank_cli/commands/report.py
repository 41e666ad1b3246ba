"""`rearank report`: flags from `settings.commands.ReportOptions`; the job (`jobs.report`) builds the page
with `rearank_cli.report` (jinja2 and matplotlib are imported only when the command runs)."""

from __future__ import annotations

from rearank_cli.commands.options import command
from rearank_cli.settings.commands import ReportOptions
from rearank_cli.settings.files import ConfigFile


@command(ReportOptions)
def report(options: ReportOptions, config: ConfigFile | None = None) -> None:
    """One self-contained HTML page of what the reranker did: measures, per-query effect, windows,
    the model's reasoning next to the qrels labels."""
    from rearank_cli.jobs.context import JobContext
    from rearank_cli.jobs.report import run

    run(options, JobContext(config=config))
