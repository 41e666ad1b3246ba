"""Error types and their exit codes.

`InputError` (exit 2) is for bad usage or bad input and names the file and line at fault;
`IncompleteWork` (exit 3) means the outputs were written but part of the work failed; every other
failure exits 1. The CLI prints one line per error; `--debug` shows the traceback.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType


class RearankError(Exception):
    """A failure we understand: one line on stderr, exit status 1."""

    exit_code = 1


class InputError(RearankError):
    """Bad usage or bad input (exit status 2), optionally naming a file and a line."""

    exit_code = 2

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.path = path
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{display_path(self.path)}"
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        return where + self.message


class IncompleteWork(RearankError):
    """The outputs were written but part of the work failed (exit status 3): failed rerank windows, a
    training run that made fewer optimizer steps than planned. Never exit 0 for such a job."""

    exit_code = 3


class MissingDependency(RearankError):
    """An optional dependency is not installed; the message is a one-line install hint."""


def display_path(path: str) -> str:
    """How a path is shown in messages (`-` is standard input)."""
    return "<stdin>" if path == "-" else str(path)


def require(module: str, *extras: str) -> ModuleType:
    """Import an optional dependency or raise a one-line hint naming the extra(s) that provide it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        choices = " or ".join(f"pip install 'rearank-cli[{extra}]'" for extra in extras)
        raise MissingDependency(f"`{module}` is not installed ({exc}); install it with: {choices}") from exc


def some(items: Sequence[object], count: int = 5) -> str:
    """The first `count` items for a message, with how many more there are: `a, b, ... (3 more)`."""
    shown = ", ".join(map(str, items[:count]))
    return shown + (f", ... ({len(items) - count} more)" if len(items) > count else "")
