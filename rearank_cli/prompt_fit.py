"""Fitting a window's prompt into the model's context: when the prompt plus `max_tokens` new tokens would
not fit, every passage is cut to the same, smaller number of characters until it does.

`PromptFit` builds each window's `Request` (through its `prompts.PromptFamily`) for the scheduler: first from the
context the backend knows (`Backend.context_length`) and its token count, or an estimate from the bytes
for a backend that cannot count (a server); then, after a server says a prompt does not fit
(`ContextTooLong`), shorter again, sized from the counts the error names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from rearank_cli.backends.base import ContextTooLong, Message, Request, Sampling
from rearank_cli.prompts.base import PromptFamily

log = logging.getLogger("rearank")

#: the shortest passage length the prompt-length guard shortens to before giving up on a window
MIN_PASSAGE_CHARS = 16
#: prompt bytes per token assumed when the backend cannot count tokens (openai): English BPE tokenizers
#: average about 4; a server's context-length error shortens further when this was not enough
EST_BYTES_PER_TOKEN = 3


def estimate_tokens(messages: Sequence[Message]) -> int:
    """A token count for backends without a tokenizer: `EST_BYTES_PER_TOKEN` bytes per token plus the
    chat template's few tokens per message."""
    return sum(len(m["content"].encode()) // EST_BYTES_PER_TOKEN + 8 for m in messages) + 16


class PromptFit:
    """Builds window requests of `prompt` that fit a context of `context` tokens (None: unknown, no fitting)
    with `sampling.max_tokens` new tokens; `count` is the backend's exact prompt token count
    (`Backend.count_prompt_tokens`, given the family's chat-template keywords when it has any; None when it
    cannot tell). `context` is updated from a server's context-length error."""

    def __init__(self, prompt: PromptFamily, sampling: Sampling, context: int | None,
                 count: Callable[..., int | None]) -> None:
        self.prompt = prompt
        self.sampling = sampling
        self.context = context
        self.count = count

    def tokens(self, messages: Sequence[Message]) -> int:
        """Prompt tokens: the backend's exact count, else an estimate from the bytes (`estimate_tokens`)."""
        args: tuple[Any, ...] = (messages, self.prompt.chat_template_kwargs) if self.prompt.chat_template_kwargs \
            else (messages,)
        tokens = self.count(*args)
        return tokens if tokens is not None else estimate_tokens(messages)

    def request(self, query: str, texts: Sequence[str], session: str | None = None) -> tuple[Request, int | None]:
        """The request of one window; when the context is known and the prompt does not fit, every passage is
        cut to the same, smaller number of characters until it does (ContextTooLong if it never fits).
        Returns the request and the passage length used (None when not shortened)."""
        messages, chars = self._fit(query, texts)
        return self.prompt.wrap(messages, len(texts), self.sampling, session), chars

    def shorter(self, exc: ContextTooLong, query: str, texts: Sequence[str], sent: Request,
                chars: int | None) -> tuple[Request, int]:
        """The next, shorter request after a context-length error on `sent` (whose passages were cut to
        `chars`), sized from the counts the error names (the server's context and its count of the prompt's
        tokens) where it names them."""
        if exc.context:
            self.context = exc.context
        current = chars if chars is not None else self.longest(texts)
        budget = (self.context or 0) - self.sampling.max_tokens
        estimate = self.tokens(sent.messages)
        if exc.prompt_tokens and budget > 0:
            factor = budget / exc.prompt_tokens  # what the server counted, not our estimate
        elif budget > 0 and estimate > budget:
            factor = budget / estimate
        else:
            factor = 0.7
        chars = max(MIN_PASSAGE_CHARS, min(current - 1, int(current * factor * 0.95)))
        log.debug("context-length error (%s): passages cut to %d characters", exc, chars)
        messages = self.prompt.messages(query, texts, max_chars=chars)
        return self.prompt.wrap(messages, len(texts), self.sampling, sent.session), chars

    def longest(self, texts: Sequence[str]) -> int:
        """The longest passage of a window after cleaning, in characters."""
        return max(len(self.prompt.clean(text)) for text in texts)

    def _fit(self, query: str, texts: Sequence[str]) -> tuple[list[Message], int | None]:
        """The window's messages and the passage length that makes them fit (None: they fit as they are)."""
        messages = self.prompt.messages(query, texts)
        if not self.context:
            return messages, None
        budget = self.context - self.sampling.max_tokens
        size = sum(len(m["content"].encode()) + 8 for m in messages) + 64
        if size <= budget:  # a byte-level tokenizer never makes more tokens than bytes
            return messages, None
        tokens = self.tokens(messages)
        if tokens <= budget:
            return messages, None
        chars = self.longest(texts)
        while chars > MIN_PASSAGE_CHARS and budget > 0:
            chars = max(MIN_PASSAGE_CHARS, min(chars - 1, int(chars * budget / tokens * 0.97)))
            messages = self.prompt.messages(query, texts, max_chars=chars)
            tokens = self.tokens(messages)
            if tokens <= budget:
                return messages, chars
        raise ContextTooLong(f"prompt of {tokens} tokens does not fit the context of {self.context} tokens "
                             f"with {self.sampling.max_tokens} new tokens")
