"""`rearank eval` (not built yet: issue #3)."""

from __future__ import annotations

import typer

from rearank_cli.errors import RearankError




def evaluate(ctx: typer.Context) -> None:
    """Not built yet."""
    raise RearankError("`rearank eval` is not built yet (issue #3)")
