"""VeRL's entry point to the REARANK reward: `compute_score` (and the rest of `rearank_cli.train.reward`).

The reward lives in `rearank_cli.train.reward`. This file stays here because VeRL configs name it:
`custom_reward_function.path=pkg://rearank_cli.reward`, or its file path `/path/to/rearank_cli/reward.py`,
which VeRL executes under a name of its own (`custom_module`, or in VeRL >= 0.7 an unregistered
`custom_module_<hash>`), perhaps from an environment where rearank is not installed. So when Python cannot
find the `rearank_cli` package, the folder that holds it is added to `sys.path` first; imported normally
this does nothing. Standard library only, like the reward itself.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _make_package_importable() -> None:
    """Let this file run when VeRL loads it by path from an environment without rearank installed."""
    if __name__ == "rearank_cli.reward" or importlib.util.find_spec("rearank_cli") is not None:
        return
    sys.path.append(str(Path(__file__).resolve().parent.parent))


_make_package_importable()

from rearank_cli.errors import MissingQrels  # noqa: E402 (after the path set-up above)
from rearank_cli.train.reward import (  # noqa: E402
    WEIGHTS,
    K,
    RewardParts,
    check_sample,
    compute_score,
    format_reward,
    list_reward,
    rank_reward,
    score,
    score_labels,
    verl_judged,
)

__all__ = ["WEIGHTS", "K", "MissingQrels", "RewardParts", "check_sample", "compute_score", "format_reward",
           "list_reward", "rank_reward", "score", "score_labels", "verl_judged"]
