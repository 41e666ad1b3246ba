"""`rearank train` (not built yet: issue #8)."""

from __future__ import annotations

import typer

from rearank_cli.errors import RearankError




def train(ctx: typer.Context) -> None:
    """Not built yet."""
    raise RearankError("`rearank train` is not built yet (issue #8)")
