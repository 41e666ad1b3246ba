"""Java calls on several Python threads (jnius releases the GIL inside Java; each thread detaches at the end)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from rearank_cli.lucene.java import detach


def available_cpus() -> int:
    """CPUs this process may run on (respects SLURM/cgroup CPU sets on Linux)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def parallel(function: Callable[[Any], Any], items: Sequence[Any], threads: int) -> list[Any]:
    """`[function(item) for item in items]` on up to `threads` threads (for Java calls, which release the GIL)."""
    threads = min(threads, len(items) // 256 + 1)
    if threads <= 1:
        return [function(item) for item in items]
    results: list[Any] = [None] * len(items)
    failures: list[BaseException] = []

    def work(first: int) -> None:
        try:
            for index in range(first, len(items), threads):
                results[index] = function(items[index])
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            failures.append(exc)
        finally:
            detach()

    workers = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise failures[0]
    return results
