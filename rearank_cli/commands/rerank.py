"""`rearank rerank` and `rearank merge` (not built yet: issue #5)."""

from __future__ import annotations

import typer

from rearank_cli.errors import RearankError


def rerank(ctx: typer.Context) -> None:
    """Not built yet."""
    raise RearankError("`rearank rerank` is not built yet (issue #5)")


def merge(ctx: typer.Context) -> None:
    """Not built yet."""
    raise RearankError("`rearank merge` is not built yet (issue #5)")
