"""The prompt-family registry and interface: lookups, registering a family from its own module, a family's
parameters, hash, chat-template keywords and parser used end to end by the scheduler."""

from __future__ import annotations

import asyncio
import re

import pytest

from rearank_cli.backends.base import Backend, Generation, Request, template_args
from rearank_cli.errors import InputError
from rearank_cli.prompts import PROMPTS, PromptFamily, build_messages, registry
from rearank_cli.rerank import QueryInput, RerankSettings, rerank_queries
from tests.conftest import temp_module
from tests.docs_examples import examples

#: a family in its own module, as a user or a plugin writes one: its own wording, passages cut by words
#: with a parameter, an assistant prefix, a parser of bare numbers, chat-template keywords; the example of
#: docs/families.md, so the page shows a family that works
THROWAWAY = examples()["prompt-family"].code


@pytest.fixture
def throwaway(tmp_path, monkeypatch):
    """The family above, registered from a module of a temporary package (removed afterwards)."""
    family = registry.register_module(temp_module(tmp_path, monkeypatch, "myfamilies.words", THROWAWAY))
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


# -- a family through the job: journal, resume, manifest ----------------------------------------------------


def _job(samples, folder, settings, **kwargs):
    from tests.rerank.test_rerank import job_for

    return job_for(samples, folder, settings=settings, **kwargs)


def test_resume_refuses_a_journal_of_another_family(samples, tmp_path):
    from rearank_cli.jobs.rerank import run_rerank
    from tests.rerank.test_rerank import ScriptedBackend

    run_rerank(_job(samples, tmp_path, RerankSettings(depth=30)), backend=ScriptedBackend())
    other = _job(samples, tmp_path, RerankSettings(depth=30, prompt="rankgpt"), resume=True)
    with pytest.raises(InputError, match="prompt 'rearank' -> 'rankgpt'; prompt_hash '8db0dd6d73a50685' -> "):
        run_rerank(other, backend=ScriptedBackend())


def test_resume_refuses_other_family_parameters_and_the_journal_records_them(throwaway, samples, tmp_path):
    import orjson

    from rearank_cli.jobs.rerank import run_rerank

    first = _job(samples, tmp_path, RerankSettings(depth=30, prompt="throwaway-words", prompt_params={"words": 2}))
    manifest = run_rerank(first, backend=ReverseByText())
    header = orjson.loads(open(first.trace_path(), "rb").readline())
    assert header["settings"]["prompt"] == "throwaway-words" and header["settings"]["prompt_params"] == {"words": 2}
    assert header["settings"]["prompt_hash"] == throwaway.bind({"words": 2}).hash == manifest.prompt_hash
    assert manifest.settings["prompt_params"] == ["words=2"] and manifest.summary.windows.failed == 0
    again = _job(samples, tmp_path, RerankSettings(depth=30, prompt="throwaway-words", prompt_params={"words": 2}),
                 resume=True)
    assert run_rerank(again, backend=ReverseByText()).summary.windows.replayed == manifest.summary.windows.total
    other = _job(samples, tmp_path, RerankSettings(depth=30, prompt="throwaway-words", prompt_params={"words": 3}),
                 resume=True)
    with pytest.raises(InputError, match=r"prompt_params \{'words': 2\} -> \{'words': 3\}"):
        run_rerank(other, backend=ReverseByText())


def test_prompt_params_from_the_command_line_are_typed(throwaway):
    from rearank_cli.settings.rerank import RerankOptions

    options = RerankOptions(output="-", prompt="throwaway-words", prompt_params=["words=1"], max_tokens=9)
    settings = RerankSettings.from_options(options)
    assert settings.prompt_params == {"words": 1} and settings.prompt_spec.param_values() == {"words": 1}
    assert settings.sampling.max_tokens == 9 and settings.sampling.temperature == 0.0  # given / the family's
    assert RerankSettings.from_options(RerankOptions(output="-", prompt="throwaway-words")).sampling.max_tokens == 64
    for bad, message in ((["words"], "expects NAME=VALUE"), (["words=x"], "words=x: the value is not an integer"),
                         (["lines=2"], "has no parameter 'lines'"), (["words=0"], "--words: 0 is less than 1")):
        with pytest.raises(InputError, match=message):
            RerankSettings.from_options(RerankOptions(output="-", prompt="throwaway-words", prompt_params=bad))


def test_the_api_takes_a_family_by_name_with_its_parameters(throwaway):
    from rearank_cli.api import Reranker

    backend = ReverseByText()
    reranker = Reranker(backend=backend, prompt="throwaway-words", prompt_params={"words": 1}, window=3, step=1)
    assert reranker.settings.sampling.max_tokens == 64  # the family's decoding
    assert reranker.rerank("q", ["a x", "c y", "b z"]) == [1, 2, 0]
    assert backend.requests[0].messages[0]["content"] == "Q=q\nDoc 1: a\nDoc 2: c\nDoc 3: b"
    same = Reranker(backend=ReverseByText(), settings=reranker.settings)
    assert same.settings == reranker.settings


def test_a_family_that_needs_a_tokenizer_gets_the_models(throwaway, tiny_model, samples, tmp_path):
    from pathlib import Path

    from rearank_cli.api import Reranker
    from rearank_cli.jobs.rerank import run_rerank

    needs = registry.register(type(throwaway)(name="throwaway-tokens", needs_tokenizer=True))
    try:
        reranker = Reranker(str(tiny_model), backend=ReverseByText(), prompt="throwaway-tokens")
        tokenizer = reranker.settings.prompt_spec.require_tokenizer()
        assert tokenizer.decode(tokenizer.encode("hello world", add_special_tokens=False)) == "hello world"
        with pytest.raises(InputError, match="cannot load the tokenizer of --model /nonexistent/model"):
            Reranker("/nonexistent/model", backend=ReverseByText(), prompt="throwaway-tokens")
        with pytest.raises(InputError, match="give the model whose tokenizer it uses"):
            Reranker(backend=ReverseByText(), prompt="throwaway-tokens")
        job = _job(samples, tmp_path, RerankSettings(depth=30, prompt="throwaway-tokens"))  # --model scripted
        with pytest.raises(InputError, match="cannot load the tokenizer of --model scripted"):
            run_rerank(job, backend=ReverseByText())
        assert not Path(job.output).exists() and not Path(job.trace_path()).exists()
    finally:
        registry.unregister(needs.name)
