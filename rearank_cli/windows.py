"""Sliding-window schedules (spec section 2) as pure functions of the list length."""

from __future__ import annotations

from rearank_cli.settings.rerank import WINDOW_SCHEDULES as SCHEDULES
from rearank_cli.settings.rerank import RerankOptions

WINDOW, STEP = RerankOptions.window, RerankOptions.step


def fixed_windows(n: int, window: int = WINDOW, step: int = STEP) -> list[tuple[int, int]]:
    """Back-to-front windows that always cover the top of the list.

    Starts at `n - window` and moves up by `step`; when the next start would fall below 0 and the
    top is not yet covered, one last window `(0, min(window, n))` runs. A list of `window` docs or
    fewer is one window (none for fewer than two docs).
    """
    _check(window, step)
    if n < 2:
        return []
    if n <= window:
        return [(0, n)]
    windows = []
    start = n - window
    while True:
        windows.append((start, start + window))
        if start == 0:
            return windows
        start = max(start - step, 0)


def official_windows(n: int, window: int = WINDOW, step: int = STEP) -> list[tuple[int, int]]:
    """The authors' loop, quirks included: a list shorter than `window` gets no window, and the top
    `(n - window) % step` positions never enter one."""
    _check(window, step)
    windows = []
    start, end = n - window, n
    while start >= 0:
        windows.append((start, end))
        start -= step
        end -= step
    return windows


def schedule(name: str, n: int, window: int = WINDOW, step: int = STEP) -> list[tuple[int, int]]:
    """Windows of the schedule `name` (`fixed` or `official`) for a list of `n` documents."""
    if name == "fixed":
        return fixed_windows(n, window, step)
    if name == "official":
        return official_windows(n, window, step)
    raise ValueError(f"unknown window schedule {name!r}; choose one of {', '.join(SCHEDULES)}")


def _check(window: int, step: int) -> None:
    if window < 2:
        raise ValueError(f"window must be at least 2, got {window}")
    if not 1 <= step <= window:
        raise ValueError(f"step must be between 1 and the window ({window}), got {step}")
