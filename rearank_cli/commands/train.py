"""`rearank train`: GRPO training with TRL and the REARANK reward (flags from `settings.train`; the job is
rearank_cli.jobs.train)."""

from __future__ import annotations

from rearank_cli.commands.options import command
from rearank_cli.settings.files import ConfigFile
from rearank_cli.settings.train import CONFIG_ALIASES, CONFIG_HELP, TrainOptions


@command(TrainOptions, aliases=CONFIG_ALIASES, tables=("trl",), config_help=CONFIG_HELP)
def train(options: TrainOptions, config: ConfigFile | None = None) -> None:
    """Train a reasoning reranker with GRPO (TRL) and the REARANK reward (nDCG@10 gain, format and list terms)."""
    from rearank_cli.jobs.context import JobContext
    from rearank_cli.jobs.train import run

    run(options, JobContext(config=config))
