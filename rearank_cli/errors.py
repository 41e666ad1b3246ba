"""Every error rearank raises, one hierarchy, and the exit status of each (mapped here and nowhere else).

    RearankError              1    a failure we understand: one line on stderr (`--debug`: the traceback)
      InputError              2    bad usage or bad input, naming the file and line; nothing is written
      IncompleteWork          3    the outputs were written but part of the work failed
        RerankIncomplete      3    ... from the Python API, carrying the result it has anyway
      Interrupted        128 + N   SIGINT (130) or SIGTERM (143) stopped the work cleanly (`jobs.signals`)
      MissingDependency       1    an optional package is not installed; the message is the install hint
      BackendError            1    one request failed after the backend's retries (the scheduler fails its
        ContextTooLong        1    window and goes on; a prompt too long for the context is shortened first)
      BackendFatal            1    the backend can serve no request of this run
      MissingQrels            1    the reward met a query without judgements (also a KeyError)
      RunNotGrouped           1    a run's lines of one query are not together (callers re-read it unordered)

Backends may subclass these. Anything else that escapes a command is a crash: exit status 1
(`RearankError.exit_code`), one line naming the exception. Standard library only, as `reward` needs.
"""

from __future__ import annotations

import importlib
import signal
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any


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


class RerankIncomplete(IncompleteWork):
    """Windows failed in the backend (after its retries): `result` (a `rerank.scheduler.RerankResult`)
    holds the orders anyway, each failed window's passages left in the order they entered it."""

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result


class Interrupted(RearankError):
    """SIGINT or SIGTERM (or a stop asked for by hand) stopped the work cleanly: exit status 128 + the
    signal's number (130 SIGINT, 143 SIGTERM; a stop without a signal counts as SIGINT). `detail` says
    what was kept or left behind."""

    def __init__(self, signum: int | None = None, detail: str = "") -> None:
        self.signum = signum
        self.exit_code = 128 + (signum or signal.SIGINT)
        message = f"stopped by {signal.Signals(signum).name}" if signum else "stopped"
        super().__init__(f"{message}; {detail}" if detail else message)


class MissingDependency(RearankError):
    """An optional dependency is not installed; the message is a one-line install hint."""


class BackendError(RearankError):
    """This request failed after the backend's own retries: the scheduler fails its window (kept in its
    order, journaled as failed) and goes on; `--resume` retries it."""


class ContextTooLong(BackendError):
    """The prompt plus the new tokens do not fit the model's context. The scheduler shortens the window's
    passages and tries again; `prompt_tokens` and `context` are the counts the backend learned, if any."""

    def __init__(self, message: str, prompt_tokens: int | None = None, context: int | None = None) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.context = context


class BackendFatal(RearankError):
    """The backend can serve no request of this run (a dead engine, a server that refuses every request):
    the scheduler stops the run at once, journal kept, exit status 1. `resumable` says whether the same
    command can go on with `--resume` once the cause is gone (a dead engine: yes; a wrong flag: no, the
    message says what to fix)."""

    def __init__(self, message: str, resumable: bool = False) -> None:
        super().__init__(message)
        self.resumable = resumable


class MissingQrels(RearankError, KeyError):
    """The qrels hold no judgements for a sample's query (the reward must never silently become 0)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "missing qrels"


class RunNotGrouped(RearankError):
    """`formats.trec.iter_run_queries` met a query again after other queries' lines (re-read the run with
    `read_run_scores`)."""


def display_path(path: str) -> str:
    """How a path is shown in messages (`-` is standard input)."""
    return "<stdin>" if path == "-" else str(path)


def require(module: str, *extras: str) -> ModuleType:
    """Import an optional dependency or raise a one-line hint naming the extra(s) that provide it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(f"`{module}` is not installed ({exc}); install it with: "
                                f"{install_hint(*extras)}") from exc


def install_hint(*extras: str) -> str:
    """The pip line that installs rearank's extra(s) from its source folder (rearank is installed from a
    checkout, not from a package index): `pip install -e '/path/to/rearank[hf]'`."""
    root = Path(__file__).resolve().parent.parent
    source = str(root) if (root / "pyproject.toml").is_file() else "/path/to/rearank"
    return " or ".join(f"pip install -e '{source}[{extra}]'" for extra in extras)


def some(items: Sequence[object], count: int = 5) -> str:
    """The first `count` items for a message, with how many more there are: `a, b, ... (3 more)`."""
    shown = ", ".join(map(str, items[:count]))
    return shown + (f", ... ({len(items) - count} more)" if len(items) > count else "")
