"""The prompt families by name: one module per family, each defining `FAMILY` (see `prompts.base`).

`FAMILY_MODULES` lists the modules of the families `--prompt` offers; `register` adds one more at run
time (a plugin, a test). `FILE_LOADERS` maps a file suffix to the module whose `load(path)` reads a
prompt template file of that kind into a family, so `--prompt FILE` works.
"""

from __future__ import annotations

import importlib
import os

from rearank_cli.errors import InputError
from rearank_cli.prompts.base import PromptFamily

#: the modules of the built-in families, in the order listings show them (the first is the default)
FAMILY_MODULES: tuple[str, ...] = (
    "rearank_cli.prompts.rearank",
    "rearank_cli.prompts.rankgpt",
    "rearank_cli.prompts.reasonrank",
    "rearank_cli.prompts.rank_k",
    "rearank_cli.prompts.rankzephyr",
    "rearank_cli.prompts.qwen3",
    "rearank_cli.prompts.rankgpt_rankllm",
    "rearank_cli.prompts.small",
)
#: file suffix -> module with `load(path: str) -> PromptFamily` (prompt template files)
FILE_LOADERS: dict[str, str] = {".yaml": "rearank_cli.prompts.template", ".yml": "rearank_cli.prompts.template"}
#: the loader of an existing file whose suffix names none (a RankLLM template by another name)
ANY_FILE_LOADER = "rearank_cli.prompts.template"

_FAMILIES: dict[str, PromptFamily] = {}


def register(family: PromptFamily) -> PromptFamily:
    """Add `family` under its name (ValueError when another family already has it)."""
    known = _families()
    if family.name in known and known[family.name] is not family:
        raise ValueError(f"a prompt family called {family.name!r} is already registered")
    known[family.name] = family
    return family


def register_module(module: str) -> PromptFamily:
    """Import `module` (a dotted path) and register its `FAMILY`."""
    family = importlib.import_module(module).FAMILY
    if not isinstance(family, PromptFamily):
        raise TypeError(f"{module}.FAMILY is not a PromptFamily")
    return register(family)


def unregister(name: str) -> None:
    """Remove the family called `name` (a test's throwaway family)."""
    _families().pop(name, None)


def family_names() -> tuple[str, ...]:
    """The registered families' names, built-in ones first."""
    return tuple(_families())


def families() -> tuple[PromptFamily, ...]:
    """The registered families, built-in ones first."""
    return tuple(_families().values())


def get_family(name: str) -> PromptFamily:
    """The family called `name`, or the family a template file `name` describes; InputError (exit 2)
    listing the known names otherwise."""
    family = _families().get(name)
    if family is not None:
        return family
    loader = FILE_LOADERS.get(os.path.splitext(name)[1].lower())
    if loader is None and os.path.isfile(name):
        loader = ANY_FILE_LOADER
    if loader is not None:
        loaded: PromptFamily = importlib.import_module(loader).load(name)
        return loaded
    files = f", or a template file ({', '.join(FILE_LOADERS)}, or any existing file)" if FILE_LOADERS else ""
    raise InputError(f"invalid value for --prompt: {name!r} is not one of {', '.join(_families())}{files}")


def is_known(name: str) -> bool:
    """Whether `name` is a registered family (a template file is not)."""
    return name in _families()


def _families() -> dict[str, PromptFamily]:
    if not _FAMILIES:
        for module in FAMILY_MODULES:
            family = importlib.import_module(module).FAMILY
            _FAMILIES[family.name] = family
    return _FAMILIES
