"""rearank: LLM reasoning rerankers (REARANK) on TREC run files.

The Python API: `from rearank_cli import Reranker, evaluate` (see `rearank_cli.api`). Both are loaded on
first use, so importing the package (and `rearank --help`) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

#: public names and the module that defines each (imported lazily by `__getattr__`)
_API = {"Reranker": "rearank_cli.api", "evaluate": "rearank_cli.api"}

__all__ = ["Reranker", "__version__", "evaluate"]


def __getattr__(name: str) -> Any:
    """Load `Reranker` and `evaluate` on first access."""
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'rearank_cli' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
