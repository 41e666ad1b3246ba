"""The prompt-family interface: everything rearank needs to know about one way of prompting a listwise
reranker and of reading its answers.

A family declares its chat messages (system, user turns, acknowledgement turns, an assistant prefix the
model continues), how a passage is cleaned and cut (characters, words, or tokens of the model's
tokenizer), the answer format and its parser with the fill rules, the grammar a cut-off answer may be
completed under, whether it asks for `<think>`/`<answer>` tags, the chat-template keywords the local
backends pass (`enable_thinking`), its own parameters and its reference decoding settings. The backends,
the scheduler, the journal and the report read only this interface, never a family's name.

How to add a family
-------------------
1. Write one module `rearank_cli/prompts/NAME.py` (the module's name is free; the family's `name` is
   what `--prompt` takes) holding a frozen, keyword-only dataclass subclass of `PromptFamily` and, at
   module level, `FAMILY = YourFamily(name="...", ...)`.
2. Implement `messages` and `hash_parts` (the strings that make the prompt; a change in any of them
   changes `hash`, which every output records). Override `clean`, `parse` and `recovery_regex` when the
   family's reference differs from rearank's (`clean_passage`, `parse.parse_ranking`, `answer_regex`).
3. Declare the family's own parameters as a `settings.base.Settings` subclass (fields made with
   `setting()`: type, default, help) and point `Params` at it; read them from `self.params`. Users set
   them with `--prompt-param NAME=VALUE`.
4. A family that cuts passages by tokens sets `needs_tokenizer = True` and reads `self.tokenizer`
   (any object with the `Tokenizer` methods: a transformers tokenizer is one); rearank loads the
   tokenizer of `--model` and binds it with `bind`.
5. Add the module's dotted path to `registry.FAMILY_MODULES` and write its tests (its messages for real
   windows against what the reference renders, its parser against the reference's on tricky answers).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

from rearank_cli.backends.base import Message, Request, Sampling
from rearank_cli.errors import InputError
from rearank_cli.parse import ParseFlags, parse_ranking
from rearank_cli.settings.base import Settings
from rearank_cli.settings.base import fields as setting_fields

F = TypeVar("F", bound="PromptFamily")


class Tokenizer(Protocol):
    """What a family that cuts passages by tokens may call on the model's tokenizer: the subset of a
    transformers tokenizer's methods that listwise rerankers' reference code uses to truncate passages."""

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]:
        """Token ids of `text`."""

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = ...) -> str:
        """Text of `token_ids`."""

    def tokenize(self, text: str) -> list[str]:
        """Token strings of `text`."""

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Text of token strings."""


@dataclass(frozen=True, kw_only=True)
class NoParams(Settings):
    """The parameters of a family that has none."""


@dataclass(frozen=True)
class Decoding:
    """A family's reference decoding settings, which `rearank rerank` uses where the user gives none."""

    max_tokens: int = Sampling.max_tokens
    temperature: float = Sampling.temperature
    top_p: float = Sampling.top_p

    def sampling(self, max_tokens: int | None = None, temperature: float | None = None, top_p: float | None = None,
                 seed: int | None = Sampling.seed) -> Sampling:
        """The request sampling: each value given, else this decoding's."""
        return Sampling(max_tokens=self.max_tokens if max_tokens is None else max_tokens,
                        temperature=self.temperature if temperature is None else temperature,
                        top_p=self.top_p if top_p is None else top_p, seed=seed)


def clean_passage(text: str, max_chars: int) -> str:
    """Drop an empty `Title: Content: ` prefix, collapse whitespace, keep the first `max_chars` characters."""
    text = text.replace("Title: Content: ", "").strip()
    return " ".join(text.split())[:max_chars]


def answer_regex(size: int) -> str:
    """Regex of a complete answer over ids 1..size: ` [i] > [j] > ... </answer>` with exactly `size` items."""
    ids = "|".join(str(i) for i in range(size, 0, -1))
    item = rf"\[(?:{ids})\]"
    repeat = rf"(?: > {item}){{{size - 1}}}" if size > 1 else ""
    return rf" ?{item}{repeat} ?</answer>"


@dataclass(frozen=True, kw_only=True)
class PromptFamily:
    """One prompt family (see the module docstring for how to add one). Instances are immutable;
    `bind` makes the copy a run uses, with its parameters and tokenizer.

    Subclasses implement `messages` and `hash_parts`, and override the other methods where their
    reference differs from rearank's."""

    #: the name `--prompt` takes, recorded in journals and manifests
    name: str
    #: one line for `--help` and listings
    summary: str = ""
    #: the family asks for `<think>`/`<answer>` tags (backends then split reasoning and may complete a
    #: cut-off answer under `recovery_regex`; the counters count missing tags)
    answer_tags: bool = False
    #: the most characters of a cleaned passage (also what the report shows of a passage)
    passage_chars: int = 400
    #: the family cuts passages by tokens: `bind` must hand it the model's tokenizer
    needs_tokenizer: bool = False
    #: keywords the hf and vllm backends pass to the chat template (openai: `chat_template_kwargs`)
    chat_template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: the reference decoding settings
    decoding: Decoding = field(default_factory=Decoding)
    #: the family's own parameters (an instance of `Params`)
    params: Settings = field(default_factory=NoParams)
    #: the model's tokenizer, for a family that `needs_tokenizer`
    tokenizer: Tokenizer | None = field(default=None, compare=False, repr=False)

    #: the class of the family's own parameters
    Params: ClassVar[type[Settings]] = NoParams

    def __post_init__(self) -> None:
        if type(self.params) is NoParams and self.Params is not NoParams:  # not given: the declared defaults
            object.__setattr__(self, "params", self.Params())

    # -- what a family implements

    def messages(self, query: str, passages: Sequence[str], max_chars: int | None = None) -> list[Message]:
        """The chat messages of one window of raw passage texts (cleaned and cut here, with `clean`);
        `max_chars`, when given, cuts every passage shorter still (the context-length guard)."""
        raise NotImplementedError

    def hash_parts(self) -> list[str]:
        """The strings that make the prompt (templates, limits); `hash` is computed from them."""
        raise NotImplementedError

    def clean(self, text: str, max_chars: int | None = None) -> str:
        """One passage as the prompt shows it: cleaned and cut to `passage_chars` (or `max_chars`)."""
        return clean_passage(text, self.passage_chars if max_chars is None else max_chars)

    def parse(self, text: str, size: int) -> tuple[list[int], ParseFlags]:
        """The model's answer as a permutation of `range(size)` plus what the parser saw; the fill rules
        (where passages the answer left out go) are the parser's."""
        return parse_ranking(text, size)

    def recovery_regex(self, size: int) -> str | None:
        """The regex of a complete answer over ids 1..size that may finish a generation cut off at the token
        limit (` [i] > [j] > ... </answer>` for a family with answer tags); None for none."""
        if not self.answer_tags or size < 1:
            return None
        return answer_regex(size)

    # -- shared by every family

    @property
    def hash(self) -> str:
        """A short hash of the prompt's strings and of the family's parameters, recorded in every output."""
        parts = list(self.hash_parts())
        if setting_fields(type(self.params)):
            parts.append(json.dumps(self.params.as_dict(), sort_keys=True))
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]

    def param_values(self) -> dict[str, Any]:
        """The family's parameters as `{name: value}` (empty for a family without any)."""
        return self.params.as_dict()

    def bind(self: F, params: Mapping[str, Any] | None = None, tokenizer: Tokenizer | None = None) -> F:
        """The family with its parameters set from `params` (names of `Params`' fields; InputError for an
        unknown one) and the model's tokenizer handed in."""
        values = dict(params or {})
        known = {f.name for f, _, _ in setting_fields(self.Params)}
        unknown = sorted(set(values) - known)
        if unknown:
            choices = ", ".join(sorted(known)) or "none"
            raise InputError(f"prompt {self.name!r} has no parameter {unknown[0]!r} (its parameters: {choices})")
        try:
            declared = self.Params(**values)
        except InputError as exc:
            raise InputError(f"prompt {self.name!r}: {exc}") from None
        return dataclasses.replace(self, params=declared, tokenizer=tokenizer or self.tokenizer)

    def parse_params(self, items: Sequence[str]) -> dict[str, Any]:
        """`NAME=VALUE` strings (`--prompt-param`) as typed parameter values (InputError naming a malformed
        item, an unknown name or a value of the wrong type)."""
        hints = {f.name: hint for f, _, hint in setting_fields(self.Params)}
        values: dict[str, Any] = {}
        for item in items:
            name, sep, text = item.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or not name:
                raise InputError(f"--prompt-param expects NAME=VALUE, got {item!r}")
            if name not in hints:
                self.bind({name: text})  # raises, naming the family's parameters
            values[name] = _typed(text.strip(), hints[name], name)
        self.bind(values)  # checks the values against their declarations
        return values

    def require_tokenizer(self) -> Tokenizer:
        """The bound tokenizer; InputError when a family that needs one was not given one."""
        if self.tokenizer is None:
            raise InputError(f"prompt {self.name!r} cuts passages by tokens and needs the model's tokenizer")
        return self.tokenizer

    def request(self, query: str, passages: Sequence[str], sampling: Sampling | None = None,
                session: str | None = None, max_chars: int | None = None) -> Request:
        """The backend request for one window: the messages plus what the backend may need to know of them."""
        return self.wrap(self.messages(query, passages, max_chars), len(passages), sampling, session)

    def wrap(self, messages: Sequence[Message], size: int, sampling: Sampling | None = None,
             session: str | None = None) -> Request:
        """The backend request of a window of `size` passages whose messages this family built."""
        return Request(messages, sampling or Sampling(), window_size=size, answer_tags=self.answer_tags,
                       session=session, answer_regex=self.recovery_regex(size),
                       chat_template_kwargs=dict(self.chat_template_kwargs))


def _typed(text: str, hint: Any, name: str) -> Any:
    """`text` as a value of type `hint` (int, float, bool, str, or one of them or None)."""
    options = [option for option in getattr(hint, "__args__", (hint,)) if option is not type(None)]
    kind = options[0] if len(options) == 1 else str
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if kind in (int, float):
            return kind(text)
    except ValueError:
        wanted = {int: "an integer", float: "a number", bool: "true or false"}[kind]
        raise InputError(f"--prompt-param {name}={text}: the value is not {wanted}") from None
    return text
