"""A prompt family's chat-template keywords and assistant prefix reach the model's chat template in every
backend: hf and vllm render them with the model's tokenizer, openai sends them to the server."""

from __future__ import annotations

import pytest

from rearank_cli.backends.base import Sampling
from rearank_cli.backends.openai_api import OpenAIBackend

#: a chat template that shows what it was given: the thinking switch and the generation prompt
TEMPLATE = ("{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}"
            "{% if enable_thinking %}[thinking on]{% endif %}{% if add_generation_prompt %}<assistant>{% endif %}")
USER = [{"role": "user", "content": "rank these"}]
PREFIXED = [*USER, {"role": "assistant", "content": "Order:"}]


@pytest.fixture
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(str(tiny_model))
    loaded.chat_template = TEMPLATE
    return loaded


def test_openai_sends_the_keywords_and_continues_an_assistant_prefix():
    backend = OpenAIBackend("m", "http://127.0.0.1:1/v1")
    plain = backend.payload(USER, Sampling())
    assert "chat_template_kwargs" not in plain and "continue_final_message" not in plain
    body = backend.payload(PREFIXED, Sampling(), {"enable_thinking": True})
    assert body["chat_template_kwargs"] == {"enable_thinking": True}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False


def test_hf_renders_the_keywords_and_continues_an_assistant_prefix(tiny_model, tokenizer):
    from rearank_cli.backends.hf import HfBackend

    backend = HfBackend(str(tiny_model), device="cpu")
    backend.tokenizer = tokenizer
    assert backend.prompt_text(USER) == "<user>rank these</user><assistant>"
    assert backend.prompt_text(USER, {"enable_thinking": True}) == "<user>rank these</user>[thinking on]<assistant>"
    assert backend.prompt_text(PREFIXED).endswith("<assistant>Order:")
    assert backend.count_prompt_tokens(USER, {"enable_thinking": True}) > backend.count_prompt_tokens(USER)


def test_vllm_renders_the_keywords_and_keeps_them_apart_in_its_cache(tiny_model, tokenizer):
    pytest.importorskip("vllm", reason="the vllm backend needs vllm")
    from rearank_cli.backends.vllm import VllmBackend

    backend = VllmBackend(str(tiny_model))
    backend._tokenizer = tokenizer
    thinking = backend.prompt_ids(USER, {"enable_thinking": True})
    assert tokenizer.decode(thinking) == "<user>rank these</user>[thinking on]<assistant>"
    assert tokenizer.decode(backend.prompt_ids(USER)) == "<user>rank these</user><assistant>"
    assert tokenizer.decode(backend.prompt_ids(PREFIXED)).endswith("<assistant>Order:")
    assert backend.count_prompt_tokens(USER, {"enable_thinking": True}) == len(thinking)
