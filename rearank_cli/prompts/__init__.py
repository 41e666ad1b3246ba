"""Prompt families: how a window is put to the model and how its answer is read (`prompts.base` has the
interface and how to add one, `prompts.registry` the families by name).

The names below are the package's public ones; `PROMPTS` is a read-only view of the registry at import.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from rearank_cli.backends.base import Message
from rearank_cli.errors import InputError
from rearank_cli.prompts.base import (
    Decoding,
    NoParams,
    PromptFamily,
    Tokenizer,
    answer_regex,
    clean_passage,
)
from rearank_cli.prompts.listwise import ListwiseChat
from rearank_cli.prompts.registry import families, family_names, get_family, register, register_module

#: the family interface under its former name
Prompt = PromptFamily

__all__ = ["PASSAGE_CHARS", "PROMPTS", "Decoding", "ListwiseChat", "NoParams", "Prompt", "PromptFamily",
           "Tokenizer", "answer_regex", "build_messages", "clean_passage", "families", "family_names",
           "answer_tags", "get_family", "get_prompt", "passage_chars", "prompt_hash", "recorded_family", "register",
           "register_module"]


def get_prompt(name: str) -> PromptFamily:
    """The family called `name` (see `registry.get_family`)."""
    return get_family(name)


def build_messages(
    prompt: str, query: str, passages: Sequence[str], max_chars: int | None = None
) -> list[Message]:
    """Chat messages for one window of family `prompt` (by name); see `PromptFamily.messages`."""
    return get_family(prompt).messages(query, passages, max_chars)


def prompt_hash(prompt: str) -> str:
    """`PromptFamily.hash` of the family called `prompt`."""
    return get_family(prompt).hash


def recorded_family(prompt: str) -> PromptFamily | None:
    """The family a record names: a registered one, or the template file at that path when it is still
    readable; None for neither (an old record, a moved or broken file)."""
    if prompt in family_names():
        return get_family(prompt)
    if not os.path.isfile(prompt):
        return None
    try:
        return get_family(prompt)
    except InputError:
        return None


def passage_chars(prompt: str, default: int = 400) -> int:
    """The passage length of the family a record names (`default` for one not known: an old record)."""
    family = recorded_family(prompt)
    return family.passage_chars if family is not None else default


def answer_tags(prompt: str, default: bool = True) -> bool:
    """Whether the family a record names asks for answer tags (`default` for one not known)."""
    family = recorded_family(prompt)
    return family.answer_tags if family is not None else default


#: the built-in families by name (a snapshot: `family_names()`/`get_family` see later registrations)
PROMPTS: dict[str, PromptFamily] = {family.name: family for family in families()}
#: passage length per family name (for readers of old records: the report)
PASSAGE_CHARS: dict[str, int] = {name: family.passage_chars for name, family in PROMPTS.items()}
