"""The hf backend when its generation thread dies: every waiting and later request fails at once."""

from __future__ import annotations

import asyncio

import pytest

from rearank_cli.backends.base import BackendFatal
from rearank_cli.prompts import PROMPTS


class Crash(BaseException):
    """What no `except Exception` in the worker catches (as a C-level abort or a bug would escape)."""


@pytest.mark.slow
def test_a_dead_worker_fails_waiting_and_later_requests(tiny_model):
    from rearank_cli.backends.hf import HfBackend

    backend = HfBackend(str(tiny_model), device="cpu", batch_size=2)
    requests = [PROMPTS["rearank"].request(f"query {i}", ["a passage", "another one"], session=f"q{i}")
                for i in range(3)]

    def crash(group):
        raise Crash("boom")

    async def run():
        await backend.start()
        backend._run_group = crash  # the worker's next batch escapes every handler
        try:
            waiting = await asyncio.wait_for(
                asyncio.gather(*(backend.agenerate(r) for r in requests), return_exceptions=True), timeout=120)
            with pytest.raises(BackendFatal, match="hf generation thread died: Crash: boom"):
                await asyncio.wait_for(backend.agenerate(requests[0]), timeout=5)
            return waiting
        finally:
            await backend.close()

    waiting = asyncio.run(run())
    assert [type(e) for e in waiting] == [BackendFatal] * 3
