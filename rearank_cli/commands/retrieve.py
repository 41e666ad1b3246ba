"""`rearank index` and `rearank retrieve` (not built yet: issue #4)."""

from __future__ import annotations

import typer

from rearank_cli.errors import RearankError


def index(ctx: typer.Context) -> None:
    """Not built yet."""
    raise RearankError("`rearank index` is not built yet (issue #4)")


def retrieve(ctx: typer.Context) -> None:
    """Not built yet."""
    raise RearankError("`rearank retrieve` is not built yet (issue #4)")
