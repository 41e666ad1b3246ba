"""`rearank augment`: REARANK RL training samples from any run + graded qrels (spec section 6); flags from
`settings.commands.AugmentOptions`."""

from __future__ import annotations

from rearank_cli.commands.options import command
from rearank_cli.settings.commands import AugmentOptions
from rearank_cli.settings.files import ConfigFile


@command(AugmentOptions)
def augment(options: AugmentOptions, config: ConfigFile | None = None) -> None:
    """Sample REARANK training windows (initial and ideal nDCG@10 each) from a run and graded qrels."""
    from rearank_cli.jobs.augment import run
    from rearank_cli.jobs.context import JobContext

    run(options, JobContext(config=config))
