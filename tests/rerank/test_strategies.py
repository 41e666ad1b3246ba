"""Window strategies: top-down partitioning (tdpart) as a state machine and through the scheduler, the
journal, --resume and shards. Scripted in-test backends drive the scheduler; the CLI kill -9 resume of
tdpart runs in test_rerank_cli.py."""

from __future__ import annotations

import orjson
import pytest

from rearank_cli.errors import InputError
from rearank_cli.formats import read_candidates, read_qrels
from rearank_cli.jobs.rerank import run_rerank
from rearank_cli.prompts import PROMPTS, clean_passage
from rearank_cli.rerank import (
    QueryInput,
    RerankSettings,
    TDPartState,
)
from rearank_cli.rerank.strategies.tdpart import partitions
from tests.rerank.test_rerank import (
    ScriptedBackend,
    job_for,
    make_queries,
    merged_shards_equal_unsharded,
    rerank,
    trace_records,
)

TDPART = RerankSettings(strategy="tdpart")


@pytest.fixture(scope="module")
def dl19(samples):
    """DL19 candidates (43 queries, top-100 with passage text) and qrels."""
    return read_candidates(str(samples / "dl19-bm25-top100.candidates.json.gz")), read_qrels(
        str(samples / "dl19-qrels.txt"))


def drive(state, answer):
    """Run a state machine to the end, answering every ready window with `answer(docids)`."""
    while not state.done:
        ready = state.ready()
        assert ready, "a state that is not done must have a ready window"
        for window in ready:
            state.apply(window, answer(window.docids))
    return state


def query_of_size(n: int, head_texts: bool = True) -> QueryInput:
    hits = [(f"d{i}", float(n - i)) for i in range(n)]
    return QueryInput("q", "text", hits, {f"d{i}": f"passage {i}" for i in range(n)} if head_texts else {})


def test_partitions_are_balanced_and_keep_order():
    docs = [str(i) for i in range(80)]
    runs = partitions(docs, 19)
    assert [len(r) for r in runs] == [16, 16, 16, 16, 16]
    assert sum(runs, []) == docs
    assert [len(r) for r in partitions(docs[:39], 19)] == [13, 13, 13]
    assert partitions([], 19) == []


def test_perfect_answers_give_the_ideal_top_k_without_a_budget_cut():
    """With room for every candidate (a budget of the depth), perfect answers always settle the ideal
    top-10, wherever the first stage hid the relevant docs; the default budget bounds the windows."""
    import random

    rng = random.Random(7)
    for trial in range(200):
        gains = {f"d{n}": rng.choice([0, 0, 0, 1, 2, 3]) for n in range(100)}
        perfect = lambda docids, g=gains: sorted(range(len(docids)), key=lambda i: -g[docids[i]])  # noqa: E731
        settings = RerankSettings.build(strategy="tdpart", tdpart_budget=100)
        state = drive(TDPartState(query_of_size(100), settings), perfect)
        final = state.final_docids()
        assert sorted(final) == sorted(gains)
        assert [gains[d] for d in final[:10]] == sorted(gains.values(), reverse=True)[:10], trial
        state = drive(TDPartState(query_of_size(100), TDPART), perfect)
        assert state.applied <= 7 and state.critical_path <= 3


def test_failed_windows_keep_the_first_stage_order():
    state = drive(TDPartState(query_of_size(100), TDPART), lambda docids: list(range(len(docids))))
    assert state.final_docids() == [f"d{i}" for i in range(100)]
    assert state.applied == 1 + 5  # nothing beat the pivot: no final window


def test_a_head_that_fits_one_window_is_one_window_like_the_sliding_window():
    for n in (1, 2, 20):
        state = drive(TDPartState(query_of_size(n), TDPART), lambda docids: list(reversed(range(len(docids)))))
        assert state.applied == (n >= 2)
        assert state.final_docids() == [f"d{i}" for i in reversed(range(n))]


def test_more_docs_to_settle_than_the_pivot_searches_the_rest_again():
    """Pivot rank 2 settles 2 docs (or a final window's) at a time; 12 are asked for. Unfilled final
    windows and no budget cut: every settled doc is then one perfect answers put there."""
    settings = RerankSettings.build(strategy="tdpart", window=6, depth=30, tdpart_pivot=2, tdpart_top_k=12,
                                    tdpart_budget=30)
    gains = {f"d{i}": (i * 7) % 30 for i in range(30)}
    state = TDPartState(query_of_size(30), settings)
    state.plain = True
    drive(state, lambda docids: sorted(range(len(docids)), key=lambda i: -gains[docids[i]]))
    assert state.round > 2
    assert [gains[d] for d in state.final_docids()[:12]] == sorted(gains.values(), reverse=True)[:12]


def test_tdpart_settings_are_checked():
    for bad in (dict(passes=2), dict(tdpart_pivot=20), dict(tdpart_pivot=0), dict(tdpart_top_k=0),
                dict(tdpart_budget=5), dict(strategy="quicksort")):
        settings = RerankSettings.build(**{"strategy": "tdpart", **bad})
        with pytest.raises(InputError):
            settings.check()


# -- through the scheduler ----------------------------------------------------------------------


def test_perfect_model_returns_the_ideal_top_k_on_dl19(dl19):
    candidates, qrels = dl19
    queries = make_queries(candidates)
    # the backend sees only prompt text: it labels by cleaned text (identical texts get the best label)
    label: dict[tuple[str, str], int] = {}
    for query in queries:
        for docid, _ in query.hits:
            key = (query.query, clean_passage(query.texts[docid], 400))
            label[key] = max(label.get(key, 0), qrels.get(query.qid, {}).get(docid, 0))
    result = rerank(queries, ScriptedBackend(key=lambda q, text: label[(q, text)]), TDPART)
    for query in queries:
        gain = lambda d, q=query: label[(q.query, clean_passage(q.texts[d], 400))]  # noqa: E731
        top = [gain(d) for d in result.orders[query.qid][:10]]
        assert top == sorted((gain(d) for d, _ in query.hits), reverse=True)[:10], query.qid
        assert sorted(result.orders[query.qid]) == sorted(d for d, _ in query.hits)
    assert sum(result.windows.values()) <= 0.8 * 9 * len(queries)
    assert max(result.critical_path.values()) <= 3


def test_every_window_is_the_exact_rearank_prompt(samples, tmp_path):
    seen = []

    class Recording(ScriptedBackend):
        async def agenerate(self, request):
            seen.append(request.messages)
            return await super().agenerate(request)

    job = job_for(samples, tmp_path, settings=RerankSettings(depth=60, strategy="tdpart"))
    manifest = run_rerank(job, backend=Recording()).to_json()
    header, records = trace_records(job.trace_path())
    assert header["settings"]["strategy"] == "tdpart" and header["settings"]["tdpart_pivot"] == 10
    candidates = read_candidates(str(samples / "dl19-bm25-top100.candidates.json.gz"))
    expected = [PROMPTS["rearank"].messages(candidates.topics[r["qid"]], [candidates.texts[d] for d in r["docids"]])
                for r in records]
    assert sorted(map(orjson.dumps, seen)) == sorted(map(orjson.dumps, expected))
    assert sorted({len(r["docids"]) for r in records if r["index"] > 0}) == [14, 15]  # 40 docs: 14 + 13 + 13
    strategy = manifest["strategy"]
    assert strategy["strategy"] == "tdpart" and strategy["tdpart_budget"] == 20
    assert strategy["windows_per_query"]["max"] <= 1 + 3 + 1
    assert strategy["critical_path"]["max"] <= 3
    assert sum(q["windows"] for q in strategy["per_query"].values()) == manifest["summary"]["windows"]["total"]


def test_resume_refuses_a_journal_of_the_other_strategy(samples, tmp_path):
    job = job_for(samples, tmp_path)
    run_rerank(job, backend=ScriptedBackend())
    job = job_for(samples, tmp_path, settings=RerankSettings(depth=30, strategy="tdpart"))
    job.resume = True
    with pytest.raises(InputError, match="strategy"):
        run_rerank(job, backend=ScriptedBackend())


def test_two_shards_merged_equal_unsharded(samples, tmp_path):
    merged_shards_equal_unsharded(samples, tmp_path, RerankSettings(depth=40, strategy="tdpart"))


def test_passes_with_tdpart_is_exit_2(cli, samples, tmp_path):
    result = cli("rerank", samples / "dl19-bm25-top100.trec", "--candidates",
                 samples / "dl19-bm25-top100.candidates.json.gz", "--strategy", "tdpart", "--passes", "2",
                 "-o", tmp_path / "out.trec")
    assert result.returncode == 2 and b"--passes" in result.stderr
    assert not (tmp_path / "out.trec").exists()


#: a journal header's settings and a manifest's `settings` as rearank wrote them before tdpart's parameters
#: moved into its module (captured from that version with the scripted backend): same keys, same order
HEADER_BEFORE = {"model": "scripted", "prompt": "rearank", "prompt_hash": "8db0dd6d73a50685", "window": 20, "step": 10,
                 "depth": 30, "passes": 1, "window_schedule": "fixed", "max_tokens": 2048, "temperature": 0.0,
                 "top_p": 1.0, "seed": 42, "lora": None}
SETTINGS_BEFORE = {"prompt": "rearank", "window": 20, "step": 10, "depth": 30, "passes": 1, "window_schedule": "fixed",
                   "max_inflight": None, "strategy": "sliding", "tdpart_pivot": 10, "tdpart_top_k": 10,
                   "tdpart_budget": 20, "max_tokens": 2048, "temperature": 0.0, "top_p": 1.0, "seed": 42}


@pytest.mark.parametrize("strategy", ["sliding", "tdpart"])
def test_journal_header_and_manifest_keep_their_keys_in_order(samples, tmp_path, strategy):
    params = {"tdpart_pivot": 5, "tdpart_top_k": 7, "tdpart_budget": 12} if strategy == "tdpart" else {}
    job = job_for(samples, tmp_path, settings=RerankSettings.build(depth=30, strategy=strategy, **params))
    manifest = run_rerank(job, backend=ScriptedBackend()).to_json()
    header, _ = trace_records(job.trace_path())
    extra = {"strategy": "tdpart", **params} if strategy == "tdpart" else {}
    assert list(header["settings"].items()) == list({**HEADER_BEFORE, **extra}.items())
    assert list(manifest["settings"].items()) == list({**SETTINGS_BEFORE, "strategy": strategy, **params}.items())
    assert list(manifest["strategy"])[: 1 + len(params)] == ["strategy", *params]


def test_tdpart_flags_and_config_keys_are_checked(cli, samples, tmp_path):
    run = samples / "dl19-bm25-top100.trec"
    base = ["rerank", run, "--candidates", samples / "dl19-bm25-top100.candidates.json.gz", "-o", tmp_path / "o.trec"]
    config = tmp_path / "tdpart.toml"
    config.write_text('strategy = "tdpart"\ntdpart-pivot = 25\n')
    result = cli(*base, "--config", config)
    assert result.returncode == 2
    assert b"--tdpart-pivot must be between 1 and the window - 1 (19), got 25" in result.stderr
    result = cli(*base, "--strategy", "tdpart", "--tdpart-budget", "3")
    assert result.returncode == 2 and b"--tdpart-budget must be at least --tdpart-pivot (10), got 3" in result.stderr
    assert not (tmp_path / "o.trec").exists()
