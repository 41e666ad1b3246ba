"""RankLLM's prompt template format, passage rules and answer parser (castorini/rank_llm, commit 1b3cabb), as
pure functions: the one copy the presets that follow RankLLM (`prompts.rankllm_chat`) and template files
(`prompts.template`) share.

A RankLLM template is a YAML mapping: `method` (`singleturn_listwise` or `multiturn_listwise` for listwise
rerankers), the message sections (`system_message`, `prefix`, `body`, `suffix`; or `prefix_user`,
`prefix_assistant`, `body_user`, `body_assistant`, `suffix_user`) with `str.format` placeholders, and two
regex keys (`output_validation_regex`, `output_extraction_regex`) that RankLLM stores but never applies.
`check_template` refuses what RankLLM would refuse and every placeholder it would not fill; `render` builds
the chat messages RankLLM's inference handlers build for one window; `clean_passage` cleans a passage as
RankLLM does (ftfy, a word cut, `[n]` made `(n)`), `fix_prompt` mends messages as its `fix_text` over a
chat-templated prompt does, `fit_words` is its prompt-length loop; `parse_answer` reads an answer as
RankLLM's `receive_permutation` does. ftfy is imported only when text is mended.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from string import Formatter
from typing import Any

from rearank_cli.backends.base import Message
from rearank_cli.parse import ParseFlags, fill_order

#: the listwise methods rearank runs; RankLLM's other methods (pointwise, pairwise, rankfid) are refused
LISTWISE_METHODS = ("singleturn_listwise", "multiturn_listwise")
#: RankLLM's passage length when none is given (`--max-passage-words`)
DEFAULT_PASSAGE_WORDS = 300
#: the regex keys RankLLM requires and stores (in its invocation history) but never applies
REGEX_KEYS = ("output_validation_regex", "output_extraction_regex")


@dataclass(frozen=True)
class Section:
    """One template key: whether it must be there, the placeholders it must use and those it may use."""

    required: bool
    needs: frozenset[str] = frozenset()
    allows: frozenset[str] = frozenset()


def _sections(**parts: Section) -> dict[str, Section]:
    plain = Section(required=True)
    return {"method": plain, **parts, **{key: plain for key in REGEX_KEYS}}


NUM_QUERY = frozenset({"query", "num"})
#: the keys of each method and their placeholders, as RankLLM's handlers validate them (`{score}`, which
#: RankLLM fills with the first-stage score, is left out: rearank does not hand scores to prompts)
SECTIONS: dict[str, dict[str, Section]] = {
    "singleturn_listwise": _sections(
        body=Section(True, frozenset({"rank", "candidate"})),
        system_message=Section(False),
        prefix=Section(False, allows=NUM_QUERY),
        suffix=Section(False, allows=NUM_QUERY | {"psg_ids"}),
    ),
    "multiturn_listwise": _sections(
        body_user=Section(True, frozenset({"rank", "candidate"})),
        system_message=Section(False),
        prefix_assistant=Section(False, allows=NUM_QUERY),
        body_assistant=Section(False, allows=frozenset({"rank"})),
        prefix_user=Section(False, allows=NUM_QUERY),
        suffix_user=Section(False, allows=NUM_QUERY),
    ),
}

#: digits RankLLM's parser reads as ASCII digits: super- and subscripts, circled and negative circled
#: 1-9, full-width digits, digits with a full stop or comma (🄀-🄉)
FAKE_DIGITS: dict[str, str] = {
    **dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789", strict=True)),
    **dict(zip("₀₁₂₃₄₅₆₇₈₉", "0123456789", strict=True)),
    **dict(zip("①②③④⑤⑥⑦⑧⑨", "123456789", strict=True)),
    **dict(zip("❶❷❸❹❺❻❼❽❾", "123456789", strict=True)),
    **dict(zip("０１２３４５６７８９", "0123456789", strict=True)),
    **{chr(0x1F100 + digit): str(digit) for digit in range(10)},
}
_FAKE_TABLE = str.maketrans(FAKE_DIGITS)
_BRACKETED = re.compile(r"\[(\d+)\]")
#: `ord("A") - 1`: letter identifiers count from A = 1
ALPHA_START = ord("A") - 1


class TemplateError(ValueError):
    """What is wrong with a template, as one line naming the key (and placeholder)."""


def placeholders(text: str) -> set[str]:
    """The field names of `text` as `str.format` reads them."""
    try:
        return {name for _, name, _, _ in Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise TemplateError(f"not a format string ({exc})") from None


def check_template(template: Mapping[str, Any], extra: Sequence[str] = ()) -> str:
    """The template's method after checking it as RankLLM would, but strictly: a method rearank does not run,
    a missing required key, an unknown key (other than `extra`), a section that is not text, a missing or
    unknown placeholder, and no `{query}` in a prefix/suffix all raise TemplateError."""
    method = template.get("method")
    if method not in SECTIONS:
        runs = " or ".join(LISTWISE_METHODS)
        raise TemplateError(f"method: {method!r} is not a listwise method rearank runs ({runs})")
    sections = SECTIONS[str(method)]
    for key, section in sections.items():
        if section.required and key not in template:
            raise TemplateError(f"{key}: missing (a {method} template needs it)")
    query_seen = "prefix" not in template and "suffix" not in template
    for key, value in template.items():
        if key in extra or key in REGEX_KEYS or key == "method":
            continue
        if key not in sections:
            raise TemplateError(f"{key}: not a key of a {method} template (its keys: {', '.join(sections)})")
        if not isinstance(value, str):
            raise TemplateError(f"{key}: expected text, got {type(value).__name__}")
        try:
            used = placeholders(value)
        except TemplateError as exc:
            raise TemplateError(f"{key}: {exc}") from None
        missing = sorted(sections[key].needs - used)
        if missing:
            raise TemplateError(f"{key}: placeholder {{{missing[0]}}} missing")
        unknown = sorted(used - sections[key].needs - sections[key].allows)
        if unknown:
            allowed = ", ".join("{" + name + "}" for name in sorted(sections[key].needs | sections[key].allows))
            raise TemplateError(f"{key}: unknown placeholder {{{unknown[0]}}} (allowed here: {allowed or 'none'})")
        query_seen = query_seen or "query" in used
    if not query_seen:
        raise TemplateError("prefix/suffix: placeholder {query} missing (RankLLM needs the query in one of them)")
    return str(method)


def replace_number(text: str) -> str:
    """`[12]` -> `(12)`, so a passage or query cannot hold an identifier (RankLLM's `_replace_number`)."""
    return _BRACKETED.sub(r"(\1)", text)


def fix_text(text: str, unescape_html: bool = True) -> str:
    """ftfy's `fix_text` (mojibake and other broken Unicode repaired; HTML entities decoded unless the text
    holds `<` or `unescape_html` is False), imported when first needed."""
    from ftfy import fix_text as ftfy_fix_text

    return str(ftfy_fix_text(text) if unescape_html else ftfy_fix_text(text, unescape_html=False))


def cut_words(text: str, words: float) -> str:
    """The first `int(words)` whitespace-separated words, joined by single spaces."""
    return " ".join(text.split()[: int(words)])


def clean_passage(text: str, words: float = DEFAULT_PASSAGE_WORDS) -> str:
    """One passage as RankLLM puts it in a prompt: stripped, repaired by ftfy, cut to its first `words` words
    (whitespace collapsed), `[n]` made `(n)`."""
    return replace_number(cut_words(fix_text(text.strip()), words))


def fix_prompt(messages: Sequence[Message]) -> list[Message]:
    """The messages as they read after RankLLM's `fix_text` over a local model's chat-templated prompt: ftfy
    stops decoding HTML entities from the first line holding `<` on, and a chat template that opens with a
    `<` marker (Qwen's, Zephyr's) makes that the whole prompt, so each message is mended without it."""
    return [{**message, "content": fix_text(message["content"], unescape_html=False)} for message in messages]


def identifier(rank: int, use_alpha: bool = False) -> str:
    """A passage's identifier: its 1-based rank, or the letter of that rank (RankLLM's `use_alpha`: A, B, ...)."""
    return chr(ALPHA_START + rank) if use_alpha else str(rank)


def answer_text(size: int, use_alpha: bool = False) -> str:
    """The answer `[1] > [2] > ... > [size]` whose tokens RankLLM sets aside in its prompt-length loop."""
    return " > ".join(f"[{identifier(rank, use_alpha)}]" for rank in range(1, size + 1))


def fit_words(render_at: Callable[[float], list[Message]], prompt_tokens: Callable[[list[Message]], int],
              budget: int, words: float, size: int) -> list[Message]:
    """RankLLM's prompt-length loop for a local model (`create_prompt`): the window rendered at `words` words
    a passage (`render_at`); while its prompt's tokens exceed `budget` (the context size less the answer's
    tokens), every passage loses `max(1, excess // (4 * size))` words and the window is rendered again. It
    stops at one word a passage (RankLLM's loop has no floor)."""
    messages = render_at(words)
    while (tokens := prompt_tokens(messages)) > budget and int(words) > 1:
        words -= max(1, (tokens - budget) // (max(size, 1) * 4))
        messages = render_at(words)
    return messages


def render(template: Mapping[str, Any], query: str, passages: Sequence[str],
           use_alpha: bool = False) -> list[Message]:
    """The chat messages RankLLM builds for one window of already cleaned passages (`clean` in
    `prompts.template`): the system message, then one user message (`singleturn_listwise`), or the user and
    assistant turns of a `multiturn_listwise` template; `use_alpha` writes letters for `{rank}`."""
    query = replace_number(query)
    messages: list[Message] = []
    system = template.get("system_message") or ""
    if system:
        messages.append({"role": "system", "content": system})
    ids = [identifier(rank, use_alpha) for rank in range(1, len(passages) + 1)]
    if template["method"] == "singleturn_listwise":
        messages.append({"role": "user", "content": _single_turn(template, query, passages, ids)})
    else:
        messages += _multi_turn(template, query, passages, ids)
    return messages


def _fill(template: Mapping[str, Any], key: str, **values: Any) -> str:
    """Section `key` with its placeholders filled; empty when the template has no such section."""
    text = template.get(key) or ""
    return str(text.format(**values)) if text else ""


def _single_turn(template: Mapping[str, Any], query: str, passages: Sequence[str], ids: Sequence[str]) -> str:
    num = len(passages)
    psg_ids = "[" + ", ".join(f"PASSAGE{i}" for i in range(1, num + 1)) + "]"
    body = "".join(_fill(template, "body", rank=rank, candidate=text) for rank, text in zip(ids, passages, strict=True))
    return (_fill(template, "prefix", num=num, query=query) + body
            + _fill(template, "suffix", num=num, query=query, psg_ids=psg_ids))


def _multi_turn(template: Mapping[str, Any], query: str, passages: Sequence[str],
                ids: Sequence[str]) -> list[Message]:
    num = len(passages)
    messages: list[Message] = []
    prefix = _fill(template, "prefix_user", num=num, query=query)
    if prefix:
        messages.append({"role": "user", "content": prefix})
        messages.append({"role": "assistant", "content": _fill(template, "prefix_assistant", num=num, query=query)})
    suffix = _fill(template, "suffix_user", num=num, query=query)
    turns = [_fill(template, "body_user", rank=rank, candidate=replace_number(text))
             for rank, text in zip(ids, passages, strict=True)]
    if "body_assistant" not in template:
        messages.append({"role": "user", "content": "".join(turns) + suffix})
        return messages
    for rank, turn in zip(ids, turns, strict=True):
        messages.append({"role": "user", "content": turn})
        messages.append({"role": "assistant", "content": _fill(template, "body_assistant", rank=rank)})
    if suffix:
        messages.append({"role": "user", "content": suffix})
    return messages


def after_think(text: str) -> str:
    """What RankLLM reads an answer from: the text after the last `</think>` (stripped), or all of it."""
    return text.rsplit("</think>", 1)[-1].strip() if "</think>" in text else text


def read_ids(span: str, use_alpha: bool = False, map_digits: bool = True) -> list[int] | None:
    """The numbers of an answer span: fake digits made ASCII (unless `map_digits` is False, as in
    ReasonRank's copy of the parser), every other non-digit a space; None where `int()` rejects one of them
    (RankLLM then keeps the window's order). With `use_alpha`, every letter is its number instead (A = 1;
    letters next to each other run together, as their numbers do in RankLLM) and everything else a space."""
    text = span.translate(_FAKE_TABLE) if map_digits else span
    if use_alpha:
        spaced = "".join(str(ord(char) - ALPHA_START) if char.isalpha() else " " for char in text)
    else:
        spaced = "".join(char if char.isdigit() else " " for char in text)
    try:
        return [int(token) for token in spaced.split()]
    except ValueError:
        return None


def answer_ids(text: str, use_alpha: bool = False) -> list[int] | None:
    """The numbers RankLLM reads from an answer: those of what follows the last `</think>` (`read_ids`)."""
    return read_ids(after_think(text), use_alpha)


def parse_answer(text: str, size: int, use_alpha: bool = False) -> tuple[list[int], ParseFlags]:
    """An answer as a permutation of `range(size)`, as RankLLM's `receive_permutation` makes it: ids are
    1-based (letters with `use_alpha`), the first mention counts, ids outside the window are dropped, the
    passages left out follow in their current order (`parse.fill_order`); an answer holding a number `int()`
    rejects keeps the window's order."""
    return fill_order(answer_ids(text, use_alpha) or (), size, text)
