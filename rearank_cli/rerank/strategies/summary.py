"""The manifest's `strategy` block: the strategy, its parameters, and the shape of its work per query."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from rearank_cli.rerank.plan import RerankSettings


class Shaped(Protocol):
    """What a rerank result says about each query's windows (`scheduler.RerankResult`)."""

    windows: dict[str, int]
    critical_path: dict[str, int]


def spread(values: Mapping[str, int]) -> dict[str, float | int]:
    """Mean, min and max of per-query counts (zeros without queries)."""
    counts = list(values.values())
    if not counts:
        return {"mean": 0, "min": 0, "max": 0}
    return {"mean": round(sum(counts) / len(counts), 3), "min": min(counts), "max": max(counts)}


def strategy_summary(settings: RerankSettings, result: Shaped) -> dict[str, Any]:
    """The strategy and its parameters; windows per query and the critical path per query (the longest
    chain of windows each waiting for another), as mean/min/max and by qid."""
    return {
        **settings.strategy_settings(),
        "windows_per_query": spread(result.windows),
        "critical_path": spread(result.critical_path),
        "per_query": {qid: {"windows": result.windows[qid], "critical_path": result.critical_path.get(qid, 0)}
                      for qid in result.windows},
    }
