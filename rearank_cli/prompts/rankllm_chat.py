"""The two listwise chat shapes castorini/rank_llm renders from its prompt templates, for the families that
follow rank_llm exactly (the strings themselves live in each family's module).

`SingleTurn`: an optional system message and one user turn made of `prefix`, one `body` per passage and
`suffix` (`singleturn_listwise`); the messages are then mended as rank_llm mends the chat-templated
prompt of a local model (`rankllm.fix_prompt`). `MultiTurn`: system message, an instruction with an
assistant's reply, one user turn per passage each answered by an assistant turn, and a closing instruction
(`multiturn_listwise`), sent as is. Placeholders: `{query}`, `{num}` (prefix, suffix), `{rank}`,
`{candidate}` (body). Passages are cut to `passage_words` words (`rankllm.clean_passage`); both shapes
are rendered by `rankllm.render`, the renderer of RankLLM template files.

A `SingleTurn` family with `context_tokens` also does what rank_llm's `create_prompt` does for a local
model: while the chat-templated prompt (model's tokenizer and chat template) is longer than
`context_tokens` minus the tokens of the answer `[1] > [2] > ... > [size]`, it lowers the word budget by
`max(1, excess // (4 * size))` and renders the window again (`rankllm.fit_words`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from rearank_cli.backends.base import Message
from rearank_cli.parse import ParseFlags
from rearank_cli.prompts.base import Decoding, PromptFamily
from rearank_cli.prompts.rankllm import answer_text, clean_passage, fit_words, fix_prompt, parse_answer
from rearank_cli.prompts.rankllm import render as render_template
from rearank_cli.settings.base import Settings, setting

#: the instruction and closing instruction rank_llm's listwise templates share (`{num}`, `{query}`)
PREFIX = (
    "I will provide you with {num} passages, each indicated by a numerical identifier []. Rank the passages "
    "based on their relevance to the search query: {query}.\n"
)
SUFFIX = (
    "Search Query: {query}.\nRank the {num} passages above based on their relevance to the search query. All "
    "the passages should be included and listed using identifiers, in descending order of relevance. The "
    "output format should be [] > [], e.g., [2] > [1], Answer concisely and directly and only respond with "
    "the ranking results, do not say any word or explain."
)


class ChatTokenizer(Protocol):
    """The tokenizer calls rank_llm's prompt-length loop makes (a transformers tokenizer has them)."""

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]:
        """Token ids of `text`."""

    def apply_chat_template(self, conversation: Sequence[Mapping[str, str]], **kwargs: Any) -> Any:
        """The chat-templated prompt (a string with `tokenize=False`)."""


@dataclass(frozen=True, kw_only=True)
class WordParams(Settings):
    """The parameter of a family that cuts passages by words."""

    command = "--prompt-param"
    passage_words: int = setting(300, help="Words kept of each passage (rank_llm's max_passage_words).", min=1)


@dataclass(frozen=True, kw_only=True)
class RankLLMChat(PromptFamily):
    """What both shapes share: passage cleaning by words, the query written as rank_llm writes it, its
    answer reading. `scale_words`: the word budget is for a window of 20 and scales with the window
    (`budget * 20 / size`, as rank_llm did before `max_passage_words`)."""

    Params = WordParams
    scale_words: bool = False

    def words(self, size: int) -> float:
        """The passage word budget for a window of `size` passages."""
        budget: int = self.params.passage_words  # type: ignore[attr-defined]
        return budget * (20 / size) if self.scale_words else budget

    def clean(self, text: str, max_chars: int | None = None, size: int = 20) -> str:
        """One passage as rank_llm shows it in a window of `size` (cut to `max_chars` characters too when the
        context guard asks)."""
        content = clean_passage(text, self.words(size))
        return content if max_chars is None else content[:max_chars]

    def parse(self, text: str, size: int) -> tuple[list[int], ParseFlags]:
        """rank_llm's reading: the ids after the last `</think>`, filled (`rankllm.parse_answer`)."""
        return parse_answer(text, size)


@dataclass(frozen=True, kw_only=True)
class SingleTurn(RankLLMChat):
    """A `singleturn_listwise` family (see the module docstring)."""

    system: str | None = None
    prefix: str = ""
    body: str = "[{rank}] {candidate}\n"
    suffix: str = ""
    #: rank_llm's context size for its prompt-length loop (None: no loop)
    context_tokens: int | None = None
    #: count the answer's tokens as rank_llm did before 2025-09 (with special tokens, minus one)
    answer_tokens_minus_one: bool = False

    def messages(self, query: str, passages: Sequence[str], max_chars: int | None = None) -> list[Message]:
        """The system message (if any) and the one user turn of a window of raw passage texts, with passages
        shortened as rank_llm's prompt-length loop shortens them when the family has `context_tokens`."""
        words = self.words(len(passages))
        if self.context_tokens is None:
            return self.render(query, passages, words, max_chars)
        tokenizer = cast(ChatTokenizer, self.require_tokenizer())
        budget = self.context_tokens - self.answer_tokens(tokenizer, len(passages))
        return fit_words(lambda cut: self.render(query, passages, cut, max_chars),
                         lambda shown: self.prompt_tokens(tokenizer, shown), budget, words, len(passages))

    def render(self, query: str, passages: Sequence[str], words: float, max_chars: int | None) -> list[Message]:
        """The messages of a window whose passages are cut to `words` words (and `max_chars` characters)."""
        cut = [clean_passage(text, words) for text in passages]
        return fix_prompt(render_template(self.template, query, [text if max_chars is None else text[:max_chars]
                                                        for text in cut]))

    @property
    def template(self) -> dict[str, str]:
        """The family's strings as a RankLLM `singleturn_listwise` template."""
        return {"method": "singleturn_listwise", "system_message": self.system or "", "prefix": self.prefix,
                "body": self.body, "suffix": self.suffix}

    def answer_tokens(self, tokenizer: ChatTokenizer, size: int) -> int:
        """Tokens of the answer `[1] > [2] > ... > [size]` as rank_llm counts them."""
        answer = answer_text(size)
        if self.answer_tokens_minus_one:
            return len(tokenizer.encode(answer)) - 1
        return len(tokenizer.encode(answer, add_special_tokens=False))

    def prompt_tokens(self, tokenizer: ChatTokenizer, messages: Sequence[Message]) -> int:
        """Tokens of the chat-templated prompt, as rank_llm counts them (special tokens included)."""
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                               **self.chat_template_kwargs)
        return len(tokenizer.encode(str(prompt)))

    def hash_parts(self) -> list[str]:
        """The template strings, how the word budget scales and the prompt-length loop's context."""
        return [self.system or "", self.prefix, self.body, self.suffix, str(self.scale_words),
                str(self.context_tokens), str(self.answer_tokens_minus_one)]


def rankllm_model(name: str, summary: str, system: str, thinking: bool, max_tokens: int) -> SingleTurn:
    """A model rank_llm prompts with `system` and its shared `PREFIX` and `SUFFIX`: 300 words a passage, the
    prompt-length loop at 4096 tokens, `enable_thinking` passed to the chat template, greedy decoding."""
    return SingleTurn(name=name, summary=summary, system=system, prefix=PREFIX, suffix=SUFFIX, passage_chars=2400,
                      context_tokens=4096, needs_tokenizer=True, chat_template_kwargs={"enable_thinking": thinking},
                      decoding=Decoding(max_tokens=max_tokens, temperature=0.0, top_p=1.0))


@dataclass(frozen=True, kw_only=True)
class MultiTurn(RankLLMChat):
    """A `multiturn_listwise` family (see the module docstring)."""

    system: str
    prefix_user: str
    prefix_assistant: str
    body_user: str
    body_assistant: str
    suffix_user: str

    def messages(self, query: str, passages: Sequence[str], max_chars: int | None = None) -> list[Message]:
        """The chat of a window of raw passage texts: one user and one assistant turn per passage."""
        cleaned = [self.clean(text, max_chars, len(passages)) for text in passages]
        return render_template(self.template, query, cleaned)

    @property
    def template(self) -> dict[str, str]:
        """The family's strings as a RankLLM `multiturn_listwise` template."""
        return {"method": "multiturn_listwise", "system_message": self.system, "prefix_user": self.prefix_user,
                "prefix_assistant": self.prefix_assistant, "body_user": self.body_user,
                "body_assistant": self.body_assistant, "suffix_user": self.suffix_user}

    def hash_parts(self) -> list[str]:
        """The template strings and how the word budget scales."""
        return [self.system, self.prefix_user, self.prefix_assistant, self.body_user, self.body_assistant,
                self.suffix_user, str(self.scale_words)]
