"""The window-strategy registry: a strategy from its own module, with a parameter of its own, gets its flag
and `--config` key, reranks end to end through the job and the API, and its journal and manifest record
its parameter (a resume with another value is refused)."""

from __future__ import annotations

import inspect

import orjson
import pytest

from rearank_cli.commands.options import command
from rearank_cli.errors import InputError
from rearank_cli.jobs.rerank import run_rerank
from rearank_cli.rerank import RerankSettings
from rearank_cli.rerank.strategies import registry
from rearank_cli.rerank.strategies.base import StrategyParams
from rearank_cli.settings.rerank import RerankOptions
from tests.conftest import temp_module
from tests.docs_examples import examples
from tests.rerank.test_rerank import ScriptedBackend, job_for

#: a strategy in its own module, as a user or a plugin writes one: blocks of `--blocks-size` docs, each
#: ranked once, all at once; the example of docs/families.md, so the page shows a strategy that works
THROWAWAY = examples()["window-strategy"].code


@pytest.fixture
def blocks(tmp_path, monkeypatch):
    """The strategy above, registered from a module of a temporary package (removed afterwards)."""
    strategy = registry.register_module(temp_module(tmp_path, monkeypatch, "mystrategies.blocks", THROWAWAY))
    yield strategy
    registry.unregister(strategy.name)


def test_built_in_strategies_and_their_parameters():
    assert registry.strategy_names()[:2] == ("sliding", "tdpart")
    assert registry.get_strategy("sliding").params == ()
    assert [cls.__name__ for cls in registry.params_classes()] == ["TDPartParams"]


def test_a_module_registers_its_strategy_and_its_parameter(blocks):
    assert registry.get_strategy("blocks") is blocks and blocks.params == ("blocks_size",)
    assert issubclass(blocks.Params, StrategyParams)
    with pytest.raises(ValueError, match="registered already"):
        registry.register_module("mystrategies.blocks")
    params, rest = registry.split_params({"blocks_size": 7, "window": 9})
    assert rest == {"window": 9} and params["blocks"].blocks_size == 7


def test_its_flag_is_generated_after_strategy(blocks):
    """The flags `rearank rerank` gets from the registry: each strategy's parameters right after --strategy."""
    generated = command(RerankOptions, *registry.params_classes())(lambda *objects, config=None: objects)
    names = list(inspect.signature(generated).parameters)
    at = names.index("strategy")
    assert names[at + 1 : at + 5] == ["tdpart_pivot", "tdpart_top_k", "tdpart_budget", "blocks_size"]
    option = inspect.signature(generated).parameters["blocks_size"].default
    assert option.param_decls == ("--blocks-size",) and option.default == 5


def test_it_reranks_end_to_end_and_records_its_parameter(blocks, samples, tmp_path):
    settings = RerankSettings.build(depth=30, strategy="blocks", blocks_size=6)
    job = job_for(samples, tmp_path, settings=settings)
    manifest = run_rerank(job, backend=ScriptedBackend()).to_json()
    lines = open(job.trace_path(), "rb").read().splitlines()
    header, records = orjson.loads(lines[0]), [orjson.loads(line) for line in lines[1:]]
    assert header["settings"]["strategy"] == "blocks" and header["settings"]["blocks_size"] == 6
    assert list(header["settings"]).index("blocks_size") == list(header["settings"]).index("strategy") + 1
    assert {len(record["docids"]) for record in records} == {6} and {r["pass"] for r in records} == {0}
    strategy = manifest["strategy"]
    assert strategy["strategy"] == "blocks" and strategy["blocks_size"] == 6
    assert strategy["windows_per_query"] == {"mean": 5, "min": 5, "max": 5} and strategy["critical_path"]["max"] == 1
    assert manifest["settings"]["blocks_size"] == 6 and manifest["summary"]["windows"]["failed"] == 0
    again = job_for(samples, tmp_path, settings=settings, resume=True)
    assert run_rerank(again, backend=ScriptedBackend()).summary.windows.replayed == len(records)
    other = job_for(samples, tmp_path, settings=RerankSettings.build(depth=30, strategy="blocks", blocks_size=5),
                    resume=True)
    with pytest.raises(InputError, match="blocks_size 6 -> 5"):
        run_rerank(other, backend=ScriptedBackend())


def test_the_api_takes_its_parameter_by_name_and_checks_it(blocks):
    from rearank_cli import Reranker

    with Reranker(backend=ScriptedBackend(), strategy="blocks", blocks_size=4) as reranker:
        assert reranker.settings.strategy_params["blocks"].blocks_size == 4
        order = reranker.rerank("query", [f"passage {i}" for i in range(8)])
        assert sorted(order) == list(range(8))
    with pytest.raises(InputError, match="--blocks-size must be at least 2"):
        Reranker(backend=ScriptedBackend(), strategy="blocks", blocks_size=1)
    with pytest.raises(InputError, match="invalid value for --blocks-size"):
        Reranker(backend=ScriptedBackend(), strategy="blocks", blocks_size="four")
    wrong = RerankSettings(strategy="blocks", strategy_params={"blocks": StrategyParams()})
    with pytest.raises(InputError, match="strategy 'blocks' must be a BlocksParams, not StrategyParams"):
        wrong.check()
