"""The public Python API: `from rearank_cli import Reranker, evaluate`, the docs' example (docs/api.md) run as written
(on the tiny model through the hf backend), and a ready backend object driven sync and async."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys

import pytest

from rearank_cli.backends.base import Backend, BackendError, Generation, Request
from tests.docs_examples import ROOT, examples


def readme_example() -> str:
    """The `python-api` example of the docs (docs/api.md), as written."""
    block = examples().get("python-api")
    assert block is not None and block.lang == "python", "the docs have no python-api example"
    return block.code


@pytest.mark.slow
def test_the_readme_example_runs(tiny_model, tmp_path):
    """Exactly the docs' code, in a fresh interpreter, with the tiny model in place of the real one."""
    pytest.importorskip("torch")
    code = readme_example()
    assert '"le723z/Rearank-7B"' in code
    check = ("\nassert sorted(order) == [0, 1, 2], order"
             "\nassert sorted(d for d, _ in reranked['q1']) == ['d1', 'd2', 'd3']"
             "\nassert [s for _, s in reranked['q1']] == [3.0, 2.0, 1.0]\n")
    script = tmp_path / "example.py"
    script.write_text(code.replace('"le723z/Rearank-7B"', repr(str(tiny_model))) + check)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                            cwd=ROOT, env={**os.environ, "TQDM_DISABLE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "'nDCG@10'" in result.stdout


class Reverse(Backend):
    """Answers every window with its passages in reverse order; records the requests."""

    name = "reverse"

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.started = self.closed = 0

    async def start(self) -> None:
        self.started += 1

    async def close(self) -> None:
        self.closed += 1

    async def agenerate(self, request: Request) -> Generation:
        self.requests.append(request)
        ids = " > ".join(f"[{i}]" for i in range(request.window_size, 0, -1))
        return Generation(f"<think>x</think> <answer>{ids}</answer>", 1, 1)


def test_a_backend_object_reranks_sync_and_closes_once():
    from rearank_cli import Reranker

    backend = Reverse()
    with Reranker(backend=backend, window=3, step=2, depth=5) as reranker:
        order = reranker.rerank("q", ["a", "b", "c", "d", "e", "f"])
        run = reranker.rerank_run({"x": [("d1", 3.0), ("d2", 2.0)]}, {"x": "query x"}, {"d1": "one", "d2": "two"})
    assert sorted(order) == list(range(6)) and order[5] == 5  # beyond depth 5: kept in place
    assert order != list(range(6))
    assert run == {"x": [("d2", 2.0), ("d1", 1.0)]}
    assert backend.started == 1 and backend.closed == 1
    assert all(r.answer_tags and r.answer_regex for r in backend.requests)
    assert {r.session for r in backend.requests[-1:]} == {"x"}


def test_async_use_and_rankgpt_requests():
    from rearank_cli import Reranker

    backend = Reverse()

    async def main() -> list[int]:
        async with Reranker(backend=backend, prompt="rankgpt") as reranker:
            return await reranker.arerank("q", ["a", "b", "c"])

    assert asyncio.run(main()) == [2, 1, 0]
    assert backend.closed == 1
    assert [(r.window_size, r.answer_tags, r.answer_regex) for r in backend.requests] == [(3, False, None)]


def test_tdpart_strategy_through_the_api():
    """`Reranker(..., strategy="tdpart")`: a reversing model on 30 passages, window 6, pivot rank 3: the top
    window's answer gives the pivot, 24 passages are compared with it in 5 windows at once (5, 5, 5, 5, 4)."""
    from rearank_cli import Reranker

    backend = Reverse()
    with Reranker(backend=backend, window=6, depth=30, strategy="tdpart", tdpart_pivot=3, tdpart_top_k=3,
                  tdpart_budget=6) as reranker:
        assert reranker.settings.strategy == "tdpart"
        order = reranker.rerank("q", [f"p{i}" for i in range(32)])
    assert sorted(order) == list(range(32)) and order[30:] == [30, 31]
    assert sorted(r.window_size for r in backend.requests[:6]) == [5, 6, 6, 6, 6, 6]  # top window, 24 docs + pivot
    with pytest.raises(Exception, match="--passes"):
        Reranker(backend=Reverse(), strategy="tdpart", passes=2)


def test_evaluate_takes_in_memory_runs_of_either_shape():
    from rearank_cli import evaluate

    qrels = {"q1": {"d2": 1}, "q2": {"d9": 2}}
    as_lists = evaluate({"q1": [("d1", 2.0), ("d2", 1.0)]}, qrels, ["P@1", "MRR", "nDCG@10"])
    as_dicts = evaluate({"q1": {"d1": 2.0, "d2": 1.0}}, qrels, ["P@1", "MRR", "nDCG@10"])
    assert as_lists == as_dicts
    # trec_eval -c: q2 (judged, not in the run) counts 0 in every mean
    assert as_lists["P@1"] == pytest.approx(0.0) and as_lists["MRR"] == pytest.approx(0.25)
    assert as_lists["nDCG@10"] == pytest.approx((1 / math.log2(3)) / 2)


class Failing(Backend):
    """A backend whose every request fails after its retries."""

    name = "failing"

    async def agenerate(self, request: Request) -> Generation:
        raise BackendError("server gone")


def test_failed_windows_raise_with_the_partial_result():
    from rearank_cli import Reranker
    from rearank_cli.api import RerankIncomplete

    with Reranker(backend=Failing(), window=3, step=2, depth=5) as reranker:
        failed = r"2 of 2 windows failed \(first: BackendError: server gone\)"
        with pytest.raises(RerankIncomplete, match=failed) as got:
            reranker.rerank("q", ["a", "b", "c", "d", "e"])
        with pytest.raises(RerankIncomplete):
            reranker.rerank_run({"x": [("d1", 2.0), ("d2", 1.0)]}, {"x": "query x"}, {"d1": "one", "d2": "two"})
    assert got.value.exit_code == 3
    assert got.value.result.orders["0"] == ["0", "1", "2", "3", "4"]  # failed windows keep their order


def test_importing_the_package_loads_no_api_module():
    code = ("import sys, rearank_cli; assert 'rearank_cli.api' not in sys.modules; "
            "rearank_cli.Reranker; assert 'rearank_cli.api' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
