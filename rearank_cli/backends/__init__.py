"""Generation backends behind one interface (`base.Backend`), each imported lazily.

`load_backend("vllm" | "hf" | "openai", model, **options)` is the only way the rest of the code
gets a backend, so `rearank --help` never imports torch, vLLM or transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

from rearank_cli.backends.base import Backend
from rearank_cli.settings import backends as declared
from rearank_cli.settings.rerank import RerankOptions

#: `--backend` name -> (module, class), from the backends' settings (`settings.backends`)
BACKENDS = {name: tuple(options.implementation.split(":")) for name, options in declared.BACKENDS.items()}


def load_backend(name: str, model: str, **options: Any) -> Backend:
    """Construct the backend `name` for `model`; options are backend-specific keyword arguments."""
    RerankOptions.check_value("backend", name)
    module_name, class_name = BACKENDS[name]
    module = importlib.import_module(module_name)
    backend: Backend = getattr(module, class_name)(model, **options)
    return backend
