"""Fixtures of the prompt-family tests: the reference fixtures of `tests/fixtures/prompts/` and the
Qwen2.5/Qwen3 tokenizers, built offline once per session (`build_qwen_tokenizer.py`)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "prompts"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: the windows and answers every reference was given (`tests/fixtures/prompts/common.py`)
common = _load(FIXTURES / "common.py", "prompt_fixture_common")
build_qwen_tokenizer = _load(Path(__file__).with_name("build_qwen_tokenizer.py"), "build_qwen_tokenizer")


def reference(family: str) -> dict[str, Any]:
    """The fixture `tests/fixtures/prompts/<family>/fixture.json`."""
    data: dict[str, Any] = json.loads((FIXTURES / family / "fixture.json").read_text(encoding="utf-8"))
    return data


def chat_template(name: str) -> str:
    """A chat template of TRL's verbatim copies (`trl/chat_templates/<name>.jinja`), read without importing TRL."""
    spec = importlib.util.find_spec("trl")
    assert spec is not None and spec.submodule_search_locations, "trl is part of the test environment"
    return (Path(list(spec.submodule_search_locations)[0]) / "chat_templates" / f"{name}.jinja").read_text()


@pytest.fixture(scope="session")
def qwen25(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The Qwen2.5 tokenizer with Qwen2.5-Instruct's chat template."""
    from transformers import AutoTokenizer

    folder = build_qwen_tokenizer.build(tmp_path_factory.mktemp("qwen25"), chat_template("qwen2_5"))
    return AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="session")
def qwen3(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The Qwen3 tokenizer with Qwen3's chat template."""
    from transformers import AutoTokenizer

    folder = build_qwen_tokenizer.build(tmp_path_factory.mktemp("qwen3"), chat_template("qwen3"), qwen3=True)
    return AutoTokenizer.from_pretrained(folder)
