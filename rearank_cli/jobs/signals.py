"""SIGINT/SIGTERM -> a clean stop, the same for every long command (index, retrieve, augment, rerank, eval,
train).

`stop_on_signals(note)` installs the handlers for the length of a job (from the main thread; elsewhere
Python allows none, and nothing is installed). The first signal logs `received SIGTERM: stopping; NOTE`
and asks for a clean stop, after which the command exits 128 + the signal's number (130 SIGINT, 143
SIGTERM) with one line naming the signal (`errors.Interrupted`):

- a sync job: `Interrupted(signum, note)` is raised where the main thread is, so `finally` blocks and
  `atomic_output` remove every temporary file and no partial output is left behind;
- an async job (`loop=` the running loop): the yielded `StopSignal` is set from the loop; the work awaited
  with `run_until_stopped` (the scheduler, a backend's start) is cancelled and raises `Interrupted`, and
  the job says what it kept (a rerank's journal holds every finished window).

A second signal exits at once with the same status, without cleaning up (`os._exit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from rearank_cli.errors import Interrupted
from rearank_cli.stopping import StopSignal

log = logging.getLogger("rearank")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals(note: str = "", loop: asyncio.AbstractEventLoop | None = None) -> Iterator[StopSignal]:
    """Within this block SIGINT/SIGTERM stop the job cleanly (see the module docstring); yields the
    `StopSignal` they set. The previous handlers come back at the end."""
    stop = StopSignal()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    received: list[int] = []

    def handle(signum: int, frame: FrameType | None = None) -> None:
        if received:
            os._exit(128 + signum)
        received.append(signum)
        log.warning("received %s: stopping%s", signal.Signals(signum).name, f"; {note}" if note else "")
        stop.set(signum)
        if loop is None:
            raise Interrupted(signum, note)

    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        if loop is None:
            signal.signal(signum, handle)
        else:  # the loop runs the handler between its callbacks
            loop.add_signal_handler(signum, handle, signum)
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            if loop is not None:
                loop.remove_signal_handler(signum)
            if handler is not None:
                signal.signal(signum, handler)
