"""The streamed rerank (queries spooled, read one at a time, written in run order) on the memory bench's
data (DL19 repeated to 215 queries, many times the requests in flight, a 10 MB candidates JSON read in
1 MB blocks; a zero-latency local server; the top 40 reranked, 3 windows a query, to keep the test short):
byte for byte the output of the in-memory path (everything in dicts, `build_run` + `write_run`), from a
run + topics + corpus and from the candidates JSON, in shards merged back, and resumed from half a journal.
The memory each path takes is bench/bench_memory.py's (989 queries and more)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bench.bench_memory import MODEL, Server, copies_for, make_data, rerank_args
from rearank_cli.backends.openai_api import OpenAIBackend
from rearank_cli.formats import read_first_stage, read_topics, write_run
from rearank_cli.rerank import RerankSettings, build_run, load_queries, rerank_queries
from rearank_cli.texts import fetch_texts

pytestmark = pytest.mark.slow  # 2,967 windows per full run

SIZE = 200  # DL19 x 5: 215 queries (bench/bench_memory.py starts at 1000)
DEPTH = ["--depth", "40"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    data = make_data(tmp_path_factory.mktemp("data"), copies_for(SIZE))
    server = Server()
    yield data, server.url
    server.close()


@pytest.fixture(scope="module")
def in_memory(bench, tmp_path_factory) -> Path:
    """The in-memory path: the whole run, topics and texts in dicts, the run built and written at the end."""
    data, url = bench
    loaded = load_queries(read_first_stage(str(data["run"])), read_topics(str(data["topics"])),
                          lambda wanted: fetch_texts(str(data["corpus"]), wanted), depth=40, prompt="rearank")

    async def rerank():
        backend = OpenAIBackend(MODEL, url)
        await backend.start()
        try:
            return await rerank_queries(loaded.queries, backend, RerankSettings(depth=40))
        finally:
            await backend.close()

    result = asyncio.run(rerank())
    out = tmp_path_factory.mktemp("memory") / "out.trec"
    write_run(str(out), build_run(loaded.queries, result.orders), "rearank")
    return out


@pytest.fixture(scope="module")
def streamed(cli, bench, tmp_path_factory) -> Path:
    data, url = bench
    out = tmp_path_factory.mktemp("streamed") / "out.trec"
    result = cli(*rerank_args("corpus", data, url, out), *DEPTH, env={"TQDM_DISABLE": "1"})
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return out


def test_streamed_equals_in_memory(streamed, in_memory):
    assert len(read_first_stage(str(streamed))) == copies_for(SIZE) * 43
    assert streamed.read_bytes() == in_memory.read_bytes()


def test_candidates_streamed_equal_in_memory(cli, bench, in_memory, tmp_path):
    data, url = bench
    out = tmp_path / "out.trec"
    result = cli(*rerank_args("candidates", data, url, out), *DEPTH, env={"TQDM_DISABLE": "1"})
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert out.read_bytes() == in_memory.read_bytes()


def test_shards_merged_equal_in_memory(cli, bench, in_memory, tmp_path):
    data, url = bench
    shards = []
    for index in range(2):
        out = tmp_path / f"shard{index}.trec"
        result = cli(*rerank_args("corpus", data, url, out), *DEPTH, "--shard", f"{index}/2",
                     env={"TQDM_DISABLE": "1"})
        assert result.returncode == 0, result.stderr.decode()[-2000:]
        shards.append(out)
    merged = tmp_path / "merged.trec"
    result = cli("merge", *shards, "--expect", data["run"], "-o", merged)
    assert result.returncode == 0, result.stderr.decode()
    assert merged.read_bytes() == in_memory.read_bytes()


def test_resumed_from_half_a_journal_equals_in_memory(cli, bench, streamed, in_memory, tmp_path):
    data, url = bench
    lines = Path(f"{streamed}.trace.jsonl").read_bytes().splitlines(keepends=True)
    kept = len(lines) // 2
    out = tmp_path / "out.trec"
    Path(f"{out}.trace.jsonl").write_bytes(b"".join(lines[:kept]))
    result = cli(*rerank_args("corpus", data, url, out), *DEPTH, "--resume", env={"TQDM_DISABLE": "1"})
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    windows = json.loads(Path(f"{out}.manifest.json").read_text())["summary"]["windows"]
    assert windows["replayed"] > 0 and windows["replayed"] + windows["generated"] == windows["total"]
    assert out.read_bytes() == in_memory.read_bytes()
