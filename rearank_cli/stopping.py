"""A request to stop work cleanly, and awaiting work until it is asked for.

`StopSignal` is set by hand or by SIGINT/SIGTERM (`jobs.signals` installs the handlers: the core never
does); `run_until_stopped(work, stop)` cancels the work once it is set and raises `errors.Interrupted`.
The scheduler checks it between windows' requests, so a stopped rerank keeps every finished window.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from rearank_cli.errors import Interrupted


class StopSignal:
    """A request to stop a run cleanly: set by SIGTERM/SIGINT (`jobs.signals`) or by hand; it remembers
    the first signal that set it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.signum: int | None = None

    def set(self, signum: int | None = None) -> None:
        """Ask the run to stop (`signum`: the signal that asked, if any)."""
        if self.signum is None:
            self.signum = signum
        self._event.set()

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self._event.is_set()

    async def wait(self) -> None:
        """Return once a stop is asked for."""
        await self._event.wait()


async def run_until_stopped(work: Awaitable[object], stop: StopSignal | None) -> None:
    """Await `work`; when `stop` is set first, cancel it and raise `Interrupted` (exit status 128 + the
    signal's number)."""
    task = asyncio.ensure_future(work)
    if stop is None:
        await task
        return
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task in done:
        task.result()
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise Interrupted(stop.signum)
