"""`rearank eval`: flags from `settings.commands.EvalOptions`; the job is `rearank_cli.jobs.eval` (imported
lazily)."""

from __future__ import annotations

from rearank_cli.commands.options import command
from rearank_cli.settings.commands import EvalOptions
from rearank_cli.settings.files import ConfigFile


@command(EvalOptions)
def evaluate(options: EvalOptions, config: ConfigFile | None = None) -> None:
    """Evaluate runs as `trec_eval -c` does (pytrec_eval) and compare them with a baseline."""
    from rearank_cli.jobs.context import JobContext
    from rearank_cli.jobs.eval import run

    run(options, JobContext(config=config))  # --jobs: one process
