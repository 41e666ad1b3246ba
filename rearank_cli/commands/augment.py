"""`rearank augment` (not built yet: issue #7)."""

from __future__ import annotations

import typer

from rearank_cli.errors import RearankError




def augment(ctx: typer.Context) -> None:
    """Not built yet."""
    raise RearankError("`rearank augment` is not built yet (issue #7)")
