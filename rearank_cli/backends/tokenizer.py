"""The model's tokenizer for a prompt family that cuts passages by tokens (`PromptFamily.needs_tokenizer`),
loaded from `--model` (a local folder or a hub id) whatever the backend, also `--backend openai` (where a
server started with `vllm serve PATH` names its model PATH). transformers is imported only here, lazily.
"""

from __future__ import annotations

from typing import cast

from rearank_cli.errors import InputError, require
from rearank_cli.prompts.base import Tokenizer


def load_tokenizer(model: str) -> Tokenizer:
    """The tokenizer of `model` (transformers' AutoTokenizer); InputError (exit 2, one line naming the model)
    when it cannot be loaded: no such folder, a hub id not in the cache while offline, no tokenizer files."""
    transformers = require("transformers", "hf")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError, KeyError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise InputError(f"cannot load the tokenizer of --model {model} (the prompt cuts passages by tokens): "
                         f"{reason}") from None
    return cast(Tokenizer, tokenizer)
