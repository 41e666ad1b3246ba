"""The prompt-family registry and interface: lookups, registering a family from its own module, a family's
parameters, hash, chat-template keywords and parser used end to end by the scheduler."""

from __future__ import annotations

import asyncio
import re
import textwrap

import pytest

from rearank_cli.backends.base import Backend, Generation, Request, template_args
from rearank_cli.errors import InputError
from rearank_cli.prompts import PROMPTS, PromptFamily, build_messages, registry
from rearank_cli.rerank import QueryInput, RerankSettings, rerank_queries

#: a family in its own module, as a user or a plugin writes one: its own wording, passage cut by words
#: with a parameter, a parser of space-separated numbers (no brackets), chat-template keywords
THROWAWAY = textwrap.dedent('''
    from dataclasses import dataclass

    from rearank_cli.parse import ParseFlags
    from rearank_cli.prompts.base import Decoding, PromptFamily
    from rearank_cli.settings.base import Settings, setting


    @dataclass(frozen=True, kw_only=True)
    class WordParams(Settings):
        words: int = setting(3, "--words", min=1, help="Words kept of each passage.")


    @dataclass(frozen=True, kw_only=True)
    class Words(PromptFamily):
        Params = WordParams

        def clean(self, text, max_chars=None):
            return " ".join(text.split()[: self.params.words])

        def messages(self, query, passages, max_chars=None):
            lines = [f"Doc {i}: {self.clean(text)}" for i, text in enumerate(passages, 1)]
            return [{"role": "user", "content": f"Q={query}\\n" + "\\n".join(lines)},
                    {"role": "assistant", "content": "Order:"}]

        def hash_parts(self):
            return ["Q={query}", "Doc {i}: {passage}", "Order:"]

        def parse(self, text, size):
            flags = ParseFlags(answer_closed=True)
            order = []
            for token in text.split():
                if token.isdigit() and 1 <= int(token) <= size and int(token) - 1 not in order:
                    order.append(int(token) - 1)
            rest = [i for i in range(size) if i not in order]
            flags.missing = len(rest)
            return order + rest, flags


    FAMILY = Words(name="throwaway-words", summary="A test family.", chat_template_kwargs={"enable_thinking": True},
                   decoding=Decoding(max_tokens=64))
''')


@pytest.fixture
def throwaway(tmp_path, monkeypatch):
    """The family above, registered from a module of a temporary package (removed afterwards)."""
    package = tmp_path / "myfamilies"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "words.py").write_text(THROWAWAY)
    monkeypatch.syspath_prepend(str(tmp_path))
    family = registry.register_module("myfamilies.words")
    yield family
    registry.unregister(family.name)


class ReverseByText(Backend):
    """Answers as the throwaway family asks: the window's docs by their text, descending, as bare numbers."""

    name = "reverse"

    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def agenerate(self, request: Request) -> Generation:
        self.requests.append(request)
        docs = re.findall(r"^Doc (\d+): (.*)$", request.messages[0]["content"], re.MULTILINE)
        order = sorted(docs, key=lambda doc: doc[1], reverse=True)
        return Generation(" ".join(number for number, _ in order), prompt_tokens=10, completion_tokens=5)


def test_built_in_families_are_registered_in_order():
    assert registry.family_names()[:2] == ("rearank", "rankgpt")
    assert tuple(PROMPTS) == registry.family_names()
    assert all(isinstance(family, PromptFamily) for family in registry.families())
    assert registry.get_family("rankgpt") is PROMPTS["rankgpt"]


def test_an_unknown_name_lists_the_registered_families(throwaway):
    with pytest.raises(InputError, match="'nope' is not one of rearank, rankgpt, .*throwaway-words"):
        registry.get_family("nope")


def test_a_module_registers_its_family_and_a_name_is_taken_once(throwaway):
    assert registry.get_family("throwaway-words") is throwaway
    assert "throwaway-words" in registry.family_names()
    assert registry.register(throwaway) is throwaway  # the same family again: no change
    clone = type(throwaway)(name="throwaway-words")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(clone)
    assert build_messages("throwaway-words", "q", ["a b c d e"])[0]["content"] == "Q=q\nDoc 1: a b c"


def test_parameters_are_typed_checked_and_change_the_hash(throwaway):
    bound = throwaway.bind({"words": 1})
    assert bound.messages("q", ["a b c"])[0]["content"] == "Q=q\nDoc 1: a"
    assert bound.param_values() == {"words": 1} and throwaway.param_values() == {"words": 3}
    assert bound.hash != throwaway.hash and bound.hash == throwaway.bind({"words": 1}).hash
    with pytest.raises(InputError, match="has no parameter 'lines' \\(its parameters: words\\)"):
        throwaway.bind({"lines": 2})
    with pytest.raises(InputError, match="--words"):
        throwaway.bind({"words": "two"})
    with pytest.raises(InputError, match="has no parameter 'words' \\(its parameters: none\\)"):
        PROMPTS["rearank"].bind({"words": 2})


def test_a_family_without_parameters_keeps_its_hash_when_bound():
    for family in PROMPTS.values():
        assert family.bind({}).hash == family.hash


def test_tokenizer_is_required_only_when_bound_missing(throwaway):
    with pytest.raises(InputError, match="needs the model's tokenizer"):
        throwaway.require_tokenizer()


def test_chat_template_arguments_continue_an_assistant_prefix():
    user = [{"role": "user", "content": "x"}]
    assert template_args(user) == {"add_generation_prompt": True}
    prefixed = [*user, {"role": "assistant", "content": "<think>"}]
    assert template_args(prefixed, {"enable_thinking": True}) == {
        "add_generation_prompt": False, "continue_final_message": True, "enable_thinking": True}
    assert Request(prefixed).continues and not Request(user).continues


def test_the_scheduler_reranks_with_a_family_from_its_own_module(throwaway):
    texts = {f"d{i}": f"{chr(ord('a') + i)} filler words here" for i in range(8)}
    query = QueryInput("q1", "letters", [(docid, 8.0 - i) for i, docid in enumerate(texts)], texts)
    backend = ReverseByText()
    settings = RerankSettings(prompt="throwaway-words", window=4, step=2, depth=8)
    result = asyncio.run(rerank_queries([query], backend, settings))
    # three windows bottom-up; the family's parser read each answer, so the best two end on top
    assert len(backend.requests) == 3 and result.orders["q1"][:2] == ["d7", "d6"]
    assert sorted(result.orders["q1"]) == sorted(texts) and result.stats.generated == 3
    first = backend.requests[0]
    assert first.chat_template_kwargs == {"enable_thinking": True} and first.continues
    assert first.messages[0]["content"].endswith("Doc 4: h filler words")  # its own passage cut
    assert not first.answer_tags and first.answer_regex is None
