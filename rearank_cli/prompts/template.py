"""Template files: `--prompt FILE.yaml` runs a RankLLM prompt template as RankLLM runs it.

The file is read as RankLLM reads it (`prompts.rankllm` has the format); rearank renders the messages
RankLLM's inference handler builds and reads answers with RankLLM's parser. What the format cannot say goes
under one optional key, `rearank:` (RankLLM itself refuses a template holding it):

    rearank:
      passage_unit: words     # words (RankLLM), characters, or tokens of --model's tokenizer
      passage_limit: 300      # RankLLM's --max-passage-words default
      answer_tags: false      # the template asks for <think>/<answer> tags (counters, answer completion)
      enable_thinking: true   # passed to the chat template (RankLLM's --is-thinking); absent: not passed
      max_tokens: 2048        # the generation budget rerank uses when --max-tokens is not given
      use_alpha: false        # letters as identifiers (RankLLM's --use-alpha)
      context_size: 4096      # RankLLM's prompt-length loop for a local model (its --context-size)

The family's hash is the file's sha256: a journal of another version of the file is not resumed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rearank_cli.backends.base import Message
from rearank_cli.errors import InputError
from rearank_cli.parse import ParseFlags
from rearank_cli.prompts.base import Decoding, PromptFamily
from rearank_cli.prompts.rankllm import (
    DEFAULT_PASSAGE_WORDS,
    TemplateError,
    answer_text,
    check_template,
    clean_passage,
    cut_words,
    fit_words,
    fix_text,
    parse_answer,
    render,
    replace_number,
)
from rearank_cli.settings.base import Settings, setting

#: the key that holds rearank's own settings in a template file
OWN_KEY = "rearank"
#: how a passage may be cut (`passage_unit`)
UNITS = ("words", "characters", "tokens")
#: file names `--prompt` always reads as a template file
SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, kw_only=True)
class TemplateParams(Settings):
    """What `--prompt-param` may set for a template file."""

    passage_limit: int | None = setting(
        None, min=1,
        help="The passage length in the template's unit (RankLLM's --max-passage-words) [default: the file's, "
        "else 300 words].")
    use_alpha: bool | None = setting(
        None,
        help="Letters as identifiers, A for the first passage (RankLLM's --use-alpha) [default: the file's, else "
        "numbers].")


@dataclass(frozen=True)
class OwnKeys:
    """The `rearank:` keys of a template file, with their defaults."""

    passage_unit: str = "words"
    passage_limit: int = DEFAULT_PASSAGE_WORDS
    answer_tags: bool = False
    enable_thinking: bool | None = None
    max_tokens: int | None = None
    use_alpha: bool = False
    context_size: int | None = None


@dataclass(frozen=True, kw_only=True)
class TemplateFamily(PromptFamily):
    """A RankLLM template file as a prompt family (`name` is the path `--prompt` was given)."""

    #: the parsed YAML mapping (RankLLM's keys; `rearank:` removed)
    template: Mapping[str, Any] = field(default_factory=dict)
    #: sha256 of the file's bytes
    sha256: str = ""
    own: OwnKeys = field(default_factory=OwnKeys)

    Params = TemplateParams

    @property
    def limit(self) -> int:
        """The passage length in `own.passage_unit`: `--prompt-param passage_limit`, else the file's."""
        value = getattr(self.params, "passage_limit", None)
        return int(value) if value is not None else self.own.passage_limit

    @property
    def use_alpha(self) -> bool:
        """Letters as identifiers: `--prompt-param use_alpha`, else the file's."""
        value = getattr(self.params, "use_alpha", None)
        return bool(value) if value is not None else self.own.use_alpha

    def messages(self, query: str, passages: Sequence[str], max_chars: int | None = None) -> list[Message]:
        """The messages RankLLM's inference handler builds for this window (see `prompts.rankllm.render`);
        with `context_size`, at the passage length RankLLM's prompt-length loop settles on."""
        if self.own.context_size is None:
            return render(self.template, query, [self.clean(text, max_chars) for text in passages], self.use_alpha)
        return self._fitted(query, passages, max_chars)

    def _fitted(self, query: str, passages: Sequence[str], max_chars: int | None) -> list[Message]:
        """RankLLM's loop for a local model (`create_prompt`): while the chat-templated prompt (repaired by
        ftfy) and the tokens of the answer `[1] > ... > [size]` exceed `context_size`, every passage loses
        `max(1, excess // (4 * size))` words (`prompts.rankllm.fit_words`)."""
        tokenizer: Any = self.require_tokenizer()
        answer = answer_text(max(len(passages), 1), self.use_alpha)
        budget = int(self.own.context_size or 0) - len(tokenizer.encode(answer, add_special_tokens=False))

        def render_at(words: float) -> list[Message]:
            cleaned = [clean_passage(text, words) for text in passages]
            return render(self.template, query, [text if max_chars is None else text[:max_chars]
                                                 for text in cleaned], self.use_alpha)

        def prompt_tokens(messages: list[Message]) -> int:
            prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                   **self.chat_template_kwargs)
            return len(tokenizer.encode(fix_text(prompt)))

        return fit_words(render_at, prompt_tokens, budget, self.limit, len(passages))

    def clean(self, text: str, max_chars: int | None = None) -> str:
        """A passage as RankLLM cleans it: stripped, repaired by ftfy, cut to `limit` units, `[n]` made `(n)`;
        `max_chars` (the context-length guard) cuts it further, in characters."""
        unit = self.own.passage_unit
        fixed = fix_text(text.strip())
        if unit == "words":
            cut = cut_words(fixed, self.limit)
        elif unit == "characters":
            cut = " ".join(fixed.split())[: self.limit]
        else:
            tokenizer = self.require_tokenizer()
            cut = tokenizer.decode(tokenizer.encode(fixed, add_special_tokens=False)[: self.limit],
                                   skip_special_tokens=True)
        cleaned = replace_number(cut)
        return cleaned if max_chars is None else cleaned[:max_chars]

    def parse(self, text: str, size: int) -> tuple[list[int], ParseFlags]:
        """RankLLM's parser (`prompts.rankllm.parse_answer`)."""
        return parse_answer(text, size, self.use_alpha)

    def recovery_regex(self, size: int) -> str | None:
        """The answer grammar of numeric identifiers (none for letters)."""
        return None if self.use_alpha else super().recovery_regex(size)

    def hash_parts(self) -> list[str]:
        """The file's sha256."""
        return [self.sha256]

    @property
    def hash(self) -> str:
        """The file's sha256 (combined with the `--prompt-param` values when any is given)."""
        given = {key: value for key, value in self.param_values().items() if value is not None}
        if not given:
            return self.sha256
        return hashlib.sha256((self.sha256 + json.dumps(given, sort_keys=True)).encode()).hexdigest()


def is_template_path(name: str) -> bool:
    """Whether `--prompt NAME` names a template file: a `.yaml`/`.yml` path, or any existing file."""
    return name.lower().endswith(SUFFIXES) or os.path.isfile(name)


_LOADED: dict[tuple[str, str], TemplateFamily] = {}


def load(path: str) -> TemplateFamily:
    """The registry's loader of template files (`registry.FILE_LOADERS`): `load_template`."""
    return load_template(path)


def load_template(path: str) -> TemplateFamily:
    """The template file at `path` as a family (parsed once per content); InputError (exit 2) naming the
    file, the line and the key or placeholder when it is not a listwise RankLLM template rearank can run."""
    raw = read_bytes(path)
    key = (path, hashlib.sha256(raw).hexdigest())
    if key not in _LOADED:
        _LOADED[key] = parse_template(raw, path)
    return _LOADED[key]


def read_template(path: str) -> TemplateFamily:
    """Read and check the template file at `path` (see `load_template`), without the cache."""
    return parse_template(read_bytes(path), path)


def read_bytes(path: str) -> bytes:
    """The file's bytes; InputError naming it when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise InputError(f"cannot read the prompt template: {exc.strerror or exc}", path) from None


def parse_template(raw: bytes, path: str) -> TemplateFamily:
    """The template file `path` whose bytes are `raw`, checked (see `load_template`)."""
    data, lines = _parse_yaml(raw, path)
    own = _own_keys(data.get(OWN_KEY), path, lines.get(OWN_KEY))
    if own.context_size is not None and own.passage_unit != "words":
        raise InputError(f"{OWN_KEY}.context_size: RankLLM's loop takes words off passages; it needs "
                         "passage_unit: words", path, lines.get(OWN_KEY))
    template = {key: value for key, value in data.items() if key != OWN_KEY}
    try:
        check_template(template)
    except TemplateError as exc:
        key = str(exc).split(":", 1)[0]
        raise InputError(str(exc), path, lines.get(key)) from None
    kwargs: dict[str, Any] = {"enable_thinking": own.enable_thinking} if own.enable_thinking is not None else {}
    decoding = Decoding(max_tokens=own.max_tokens) if own.max_tokens else Decoding()
    chars = own.passage_limit if own.passage_unit == "characters" else 4000
    return TemplateFamily(name=path, summary=f"the RankLLM template {os.path.basename(path)}",
                          answer_tags=own.answer_tags, passage_chars=chars,
                          needs_tokenizer=own.passage_unit == "tokens" or own.context_size is not None,
                          chat_template_kwargs=kwargs,
                          decoding=decoding, template=template, sha256=hashlib.sha256(raw).hexdigest(), own=own)


def _parse_yaml(raw: bytes, path: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The file's top-level mapping and the line (1-based) of each of its keys."""
    import yaml

    try:
        text = raw.decode("utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise InputError("the prompt template is not UTF-8 text", path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"not a YAML file: {problem}", path, mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise InputError("a prompt template is a YAML mapping (method, system_message, prefix, body, ...)", path)
    lines = {str(key.value): key.start_mark.line + 1 for key, _ in getattr(node, "value", [])
             if isinstance(key, yaml.ScalarNode)}
    return {str(key): value for key, value in data.items()}, lines


def _own_keys(value: Any, path: str, line: int | None) -> OwnKeys:
    """The `rearank:` mapping as `OwnKeys`; InputError naming the key when one is unknown or of the wrong type."""
    if value is None:
        return OwnKeys()
    if not isinstance(value, dict):
        raise InputError(f"{OWN_KEY}: expected a mapping of rearank's keys", path, line)
    known = {f.name: f for f in dataclasses.fields(OwnKeys)}
    for key, item in value.items():
        if key not in known:
            raise InputError(f"{OWN_KEY}.{key}: unknown key (known: {', '.join(known)})", path, line)
        problem = _own_problem(str(key), item)
        if problem:
            raise InputError(f"{OWN_KEY}.{key}: {problem}", path, line)
    return OwnKeys(**{str(key): item for key, item in value.items()})


def _own_problem(key: str, value: Any) -> str | None:
    """Why `value` does not fit `rearank.KEY`, or None."""
    if key == "passage_unit":
        return None if value in UNITS else f"{value!r} is not one of {', '.join(UNITS)}"
    if key in ("answer_tags", "enable_thinking", "use_alpha"):
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"expected a positive integer, got {value!r}"
    return None
