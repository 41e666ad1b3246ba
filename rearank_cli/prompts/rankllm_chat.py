"""The two listwise chat shapes castorini/rank_llm renders from its prompt templates, for the families that
follow rank_llm exactly (the strings themselves live in each family's module).

`SingleTurn`: an optional system message and one user turn made of `prefix`, one `body` per passage and
`suffix` (`singleturn_listwise`); the messages are then mended as rank_llm mends the chat-templated
prompt of a local model (`rankllm_rules.fix_prompt`). `MultiTurn`: system message, an instruction with an
assistant's reply, one user turn per passage each answered by an assistant turn, and a closing instruction
(`multiturn_listwise`), sent as is. Placeholders: `{query}`, `{num}` (prefix, suffix), `{rank}`,
`{candidate}` (body). Passages are cut to `passage_words` words (`rankllm_rules.passage_words`).

A `SingleTurn` family with `context_tokens` also does what rank_llm's `create_prompt` does for a local
model: while the chat-templated prompt (model's tokenizer and chat template) is longer than
`context_tokens` minus the tokens of the answer `[1] > [2] > ... > [size]`, it lowers the word budget by
`max(1, excess // (4 * size))` and renders the window again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from rearank_cli.backends.base import Message
from rearank_cli.parse import ParseFlags
from rearank_cli.prompts.base import PromptFamily
from rearank_cli.prompts.rankllm_rules import fix_prompt, parse_after_think, passage_words, replace_number
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
        content = passage_words(text, self.words(size))
        return content if max_chars is None else content[:max_chars]

    def parse(self, text: str, size: int) -> tuple[list[int], ParseFlags]:
        """rank_llm's reading: the ids after the last `</think>`, filled (`rankllm_rules.fill`)."""
        return parse_after_think(text, size)


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
        messages = self.render(query, passages, words, max_chars)
        if self.context_tokens is None:
            return messages
        tokenizer = cast(ChatTokenizer, self.require_tokenizer())
        budget = self.context_tokens - self.answer_tokens(tokenizer, len(passages))
        while (tokens := self.prompt_tokens(tokenizer, messages)) > budget and int(words) > 1:
            words -= max(1, (tokens - budget) // (len(passages) * 4))
            messages = self.render(query, passages, words, max_chars)
        return messages

    def render(self, query: str, passages: Sequence[str], words: float, max_chars: int | None) -> list[Message]:
        """The messages of a window whose passages are cut to `words` words (and `max_chars` characters)."""
        query, num = replace_number(query), len(passages)
        cut = [passage_words(text, words) for text in passages]
        body = "".join(self.body.format(rank=i, candidate=text if max_chars is None else text[:max_chars])
                       for i, text in enumerate(cut, 1))
        user = self.prefix.format(num=num, query=query) + body + self.suffix.format(num=num, query=query)
        system = [{"role": "system", "content": self.system}] if self.system else []
        return fix_prompt([*system, {"role": "user", "content": user}])

    def answer_tokens(self, tokenizer: ChatTokenizer, size: int) -> int:
        """Tokens of the answer `[1] > [2] > ... > [size]` as rank_llm counts them."""
        answer = " > ".join(f"[{i}]" for i in range(1, size + 1))
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
        query, num = replace_number(query), len(passages)
        messages = [{"role": "system", "content": self.system},
                    {"role": "user", "content": self.prefix_user.format(num=num, query=query)},
                    {"role": "assistant", "content": self.prefix_assistant.format(num=num, query=query)}]
        for i, text in enumerate(passages, 1):
            candidate = replace_number(self.clean(text, max_chars, num))
            messages.append({"role": "user", "content": self.body_user.format(rank=i, candidate=candidate)})
            messages.append({"role": "assistant", "content": self.body_assistant.format(rank=i)})
        messages.append({"role": "user", "content": self.suffix_user.format(num=num, query=query)})
        return messages

    def hash_parts(self) -> list[str]:
        """The template strings and how the word budget scales."""
        return [self.system, self.prefix_user, self.prefix_assistant, self.body_user, self.body_assistant,
                self.suffix_user, str(self.scale_words)]
