"""The reranking core: query state machines, the continuous scheduler, journal/resume, shards, merge,
score modes, the prompt-length guard and input errors. Scripted in-test backends drive the scheduler
(allowed for scheduler tests); the real backends are exercised in test_rerank_cli.py."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

import orjson
import pytest

from rearank_cli.backends.base import Backend, BackendError, Generation, Sampling
from rearank_cli.errors import InputError, RearankError
from rearank_cli.formats import read_candidates, read_qrels, read_run
from rearank_cli.jobs.merge import merge_runs
from rearank_cli.jobs.rerank import RerankJob, journal_header, run_rerank
from rearank_cli.prompts import clean_passage
from rearank_cli.rerank import (
    Interrupted,
    Journal,
    QueryInput,
    QueryState,
    RerankSettings,
    StopSignal,
    build_run,
    load_queries,
    parse_shard,
    rerank_queries,
    shard_qids,
)
from rearank_cli.rerank.strategies.sliding import schedule

PASSAGE_RE = re.compile(r"^\[(\d+)\] (.*)$", re.DOTALL)


def passages_of(messages) -> list[str]:
    """The passage texts of a REARANK/RankGPT window, in window order."""
    found = []
    for message in messages:
        match = PASSAGE_RE.match(message["content"]) if message["role"] == "user" else None
        if match:
            found.append(match.group(2))
    return found


def query_of(messages) -> str:
    return re.search(r'search query: "(.*)"\n', messages[-1]["content"]).group(1)


def answer(order: list[int]) -> str:
    return "<think>scripted</think> <answer>" + " > ".join(f"[{i + 1}]" for i in order) + "</answer>"


class ScriptedBackend(Backend):
    """Ranks passages by a deterministic key of their text; counts and records calls."""

    name = "scripted"

    def __init__(self, key=None, fail=None, delay=0.0, context_length=None):
        self.key = key or (lambda query, text: hashlib.sha256(text.encode()).hexdigest())
        self.fail = fail or (lambda query, texts: False)
        self.delay = delay
        self.context_length = context_length
        self.calls: list[tuple[str, list[str]]] = []
        self.inflight = 0
        self.max_seen = 0

    async def agenerate(self, request):
        query, texts = query_of(request.messages), passages_of(request.messages)
        assert request.window_size == len(texts) and request.session is not None
        self.calls.append((query, texts))
        self.inflight += 1
        self.max_seen = max(self.max_seen, self.inflight)
        try:
            await asyncio.sleep(self.delay)
            if self.fail(query, texts):
                raise BackendError("scripted failure")
        finally:
            self.inflight -= 1
        order = sorted(range(len(texts)), key=lambda i: self.key(query, texts[i]), reverse=True)
        return Generation(answer(order), prompt_tokens=100, completion_tokens=10)

    def count_prompt_tokens(self, messages):
        return sum(len(m["content"]) for m in messages) // 2


@pytest.fixture(scope="module")
def dl19(samples):
    """DL19 candidates (43 queries, top-100 with passage text) and qrels."""
    return read_candidates(str(samples / "dl19-bm25-top100.candidates.json.gz")), read_qrels(
        str(samples / "dl19-qrels.txt"))


def make_queries(candidates, qids=None, depth=100, prompt="rearank"):
    run = {q: candidates.run[q] for q in (qids or candidates.run)}
    return load_queries(run, candidates.topics, lambda w: {d: candidates.texts[d] for d in w if d in candidates.texts},
                        depth=depth, prompt=prompt).queries


def rerank(queries, backend, settings, journal=None, **kwargs):
    return asyncio.run(rerank_queries(queries, backend, settings, journal, **kwargs))


# -- state machine and outputs ----------------------------------------------------------------


def test_query_state_reranks_head_and_keeps_tail_order():
    hits = [(f"d{i}", float(100 - i)) for i in range(30)]
    query = QueryInput("q", "text", hits, {f"d{i}": f"passage {i}" for i in range(12)})
    state = QueryState(query, RerankSettings(window=6, step=3, depth=12))
    assert [(s, e) for _, _, s, e in state.plan] == schedule("fixed", 12, 6, 3)
    while not state.done:
        window = state.next_window()
        state.apply(window, list(reversed(range(len(window.docids)))))
    final = state.final_docids()
    assert final[12:] == [f"d{i}" for i in range(12, 30)]
    assert sorted(final[:12]) == sorted(f"d{i}" for i in range(12))
    assert final[:12] != [f"d{i}" for i in range(12)]


def test_score_modes(dl19):
    candidates, _ = dl19
    queries = make_queries(candidates, ["1037798"], depth=20)
    order = {"1037798": list(reversed([d for d, _ in queries[0].hits]))}
    ranked = build_run(queries, order, "rank")["1037798"]
    scores = [s for _, s in ranked]
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False))
    assert [d for d, _ in ranked] == order["1037798"]
    copied = build_run(queries, order, "first-stage")["1037798"]
    assert [s for _, s in copied] == [s for _, s in queries[0].hits]
    assert [d for d, _ in copied] == order["1037798"]


def test_shard_selection_is_a_partition():
    qids = [f"q{i}" for i in range(10)]
    parts = [shard_qids(qids, parse_shard(f"{i}/3")) for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(qids)
    assert parts[0] == ["q0", "q3", "q6", "q9"]
    for bad in ("3/3", "1", "a/b", "-1/2"):
        with pytest.raises(InputError):
            parse_shard(bad)


# -- the oracle: nDCG@10 equals a direct simulation of the sliding window -----------------------


def simulate(docids, label, n_window=20, step=10):
    """The sliding window written out directly: back to front, each window sorted by label."""
    order = list(docids)
    start = len(order) - n_window
    while True:
        start = max(start, 0)
        block = order[start : start + n_window]
        order[start : start + n_window] = sorted(block, key=label, reverse=True)
        if start == 0:
            return order
        start -= step


def test_oracle_backend_matches_direct_simulation(dl19, tmp_path, samples):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    candidates, qrels = dl19
    # the oracle only sees prompt text, so it labels by cleaned text (identical texts get the best label)
    text_label: dict[tuple[str, str], int] = {}
    for qid, hits in candidates.run.items():
        for docid, _ in hits:
            key = (candidates.topics[qid], clean_passage(candidates.texts[docid], 400))
            text_label[key] = max(text_label.get(key, 0), qrels.get(qid, {}).get(docid, 0))
    backend = ScriptedBackend(key=lambda query, text: text_label.get((query, text), 0))
    out = tmp_path / "oracle.trec"
    job = RerankJob(run=str(samples / "dl19-bm25-top100.trec"), output=str(out), model="oracle", backend="scripted",
                    candidates=str(samples / "dl19-bm25-top100.candidates.json.gz"))
    manifest = run_rerank(job, backend=backend).to_json()
    assert manifest["summary"]["windows"]["generated"] == 43 * 9
    simulated = {}
    for qid, hits in candidates.run.items():
        topic = candidates.topics[qid]
        label = lambda d, t=topic: text_label[(t, clean_passage(candidates.texts[d], 400))]  # noqa: E731
        order = simulate([d for d, _ in hits], label)
        simulated[qid] = {d: float(len(order) - i) for i, d in enumerate(order)}
    ours = {q: {d: s for d, s in hits} for q, hits in read_run(str(out)).items()}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"})
    mean = lambda res: sum(v["ndcg_cut_10"] for v in res.values()) / len(res)  # noqa: E731
    ours_ndcg, simulated_ndcg = mean(evaluator.evaluate(ours)), mean(evaluator.evaluate(simulated))
    assert ours_ndcg == pytest.approx(simulated_ndcg, abs=1e-12)
    bm25 = {q: {d: s for d, s in hits} for q, hits in candidates.run.items()}
    assert ours_ndcg > mean(evaluator.evaluate(bm25)) + 0.2  # an oracle window sort lifts BM25 a lot


# -- the scheduler ------------------------------------------------------------------------------


def test_continuous_scheduler_never_waits_for_a_slow_query(dl19):
    """Query A's first request blocks until query B has run ALL its windows: lock-step rounds would
    deadlock (B's second window would wait for A's first)."""
    candidates, _ = dl19
    queries = make_queries(candidates, ["1037798", "104861"], depth=40)
    slow_query, fast_query = queries[0].query, queries[1].query
    fast_windows = len(schedule("fixed", 40))
    released = asyncio.Event()

    class Blocking(ScriptedBackend):
        async def agenerate(self, request):
            if query_of(request.messages) == slow_query and not released.is_set():
                await released.wait()
            result = await super().agenerate(request)
            if sum(1 for q, _ in self.calls if q == fast_query) == fast_windows:
                released.set()
            return result

    async def main():
        return await asyncio.wait_for(rerank_queries(queries, Blocking(), RerankSettings(depth=40, max_inflight=2)), 20)

    result = asyncio.run(main())
    assert result.stats.generated == 2 * fast_windows


def test_max_inflight_bounds_concurrency(dl19):
    candidates, _ = dl19
    queries = make_queries(candidates, depth=20)
    backend = ScriptedBackend(delay=0.002)
    result = rerank(queries, backend, RerankSettings(depth=20, max_inflight=5))
    assert backend.max_seen == 5
    assert result.stats.generated == 43
    backend = ScriptedBackend(delay=0.002)
    rerank(queries, backend, RerankSettings(depth=20, max_inflight=1))
    assert backend.max_seen == 1


def test_windows_of_a_query_see_the_previous_permutation(dl19):
    candidates, _ = dl19
    queries = make_queries(candidates, ["1037798"], depth=30)
    backend = ScriptedBackend()
    rerank(queries, backend, RerankSettings(depth=30))
    (first_q, first), (_, second) = backend.calls
    order = queries[0].hits
    text = lambda d: clean_passage(queries[0].texts[d], 400)  # noqa: E731
    assert first == [text(d) for d, _ in order[10:30]]
    # the second window (0, 20) holds the top 10 of the first window's answer at positions 10-19
    top10 = sorted(first, key=lambda t: hashlib.sha256(t.encode()).hexdigest(), reverse=True)[:10]
    assert second[10:] == top10


# -- journal and resume -----------------------------------------------------------------------


def job_for(samples, tmp_path, name="out.trec", **kwargs):
    kwargs.setdefault("settings", RerankSettings(depth=30))
    return RerankJob(run=str(samples / "dl19-bm25-top100.trec"), output=str(tmp_path / name), model="scripted",
                     backend="scripted", candidates=str(samples / "dl19-bm25-top100.candidates.json.gz"),
                     shard="0/8", **kwargs)


def trace_records(path):
    lines = Path(path).read_bytes().splitlines()
    return orjson.loads(lines[0]), [orjson.loads(line) for line in lines[1:]]


def test_journal_records_every_window(samples, tmp_path):
    job = job_for(samples, tmp_path)
    manifest = run_rerank(job, backend=ScriptedBackend()).to_json()
    header, records = trace_records(job.trace_path())
    assert header["type"] == "header" and header["settings"]["prompt"] == "rearank"
    assert len(records) == manifest["summary"]["windows"]["total"] == 6 * 2
    for record in records:
        for key in ("qid", "pass", "start", "end", "docids", "output", "permutation", "flags", "prompt_tokens",
                    "completion_tokens", "latency_s"):
            assert key in record
        assert sorted(record["permutation"]) == list(range(record["end"] - record["start"]))
    assert manifest["prompt_hash"] and manifest["versions"]["rearank-cli"]
    assert Path(job.manifest_path()).exists()


class StopAfter(ScriptedBackend):
    """Sets the stop event (as SIGTERM does) once `count` windows have been answered."""

    def __init__(self, stop, count):
        super().__init__()
        self.stop, self.count = stop, count

    async def agenerate(self, request):
        result = await super().agenerate(request)
        if len(self.calls) >= self.count:
            self.stop.set()
            await asyncio.sleep(10)  # still in flight when the stop comes
        return result


@pytest.mark.parametrize("strategy", ["sliding", "tdpart"])
def test_stop_then_resume_generates_only_missing_windows(dl19, tmp_path, strategy):
    """Stopped mid-run, then resumed: every finished window is replayed, none is asked again, and the
    orders equal an uninterrupted run (sliding: 6 queries at depth 30; tdpart: 4 at depth 100)."""
    candidates, _ = dl19
    sliding = strategy == "sliding"
    queries = make_queries(candidates, list(candidates.run)[: 6 if sliding else 4], depth=30 if sliding else 100)
    settings = RerankSettings(depth=30 if sliding else 100, max_inflight=3, strategy=strategy)
    full = rerank(queries, ScriptedBackend(), settings)
    total = sum(full.windows.values())
    assert total == 12 or not sliding
    job = RerankJob(run=None, output=str(tmp_path / "o"), model="scripted", settings=settings, candidates="x")
    journal = Journal(str(tmp_path / "t.jsonl"), journal_header(job), resume=False)
    journal.open()

    async def interrupted():
        stop = StopSignal()
        return await rerank_queries(queries, StopAfter(stop, 5 if sliding else 8), settings, journal, stop=stop)

    with pytest.raises(Interrupted):
        asyncio.run(interrupted())
    journal.close()
    _, done = trace_records(tmp_path / "t.jsonl")
    assert 2 <= len(done) < total
    journal = Journal(str(tmp_path / "t.jsonl"), journal_header(job), resume=True)
    backend = ScriptedBackend()
    resumed = rerank(queries, backend, settings, journal)
    journal.close()
    assert resumed.stats.replayed == len(done)
    assert len(backend.calls) == total - len(done)
    assert resumed.orders == full.orders
    _, records = trace_records(tmp_path / "t.jsonl")
    keys = [(r["qid"], r["pass"], r["start"], r["end"]) for r in records]
    assert len(keys) == len(set(keys)) == total


def test_failed_window_keeps_order_and_resume_retries_it(samples, tmp_path):
    job = job_for(samples, tmp_path)
    healthy = run_rerank(job_for(samples, tmp_path, "healthy.trec"), backend=ScriptedBackend())
    assert healthy.summary.windows.failed == 0
    target = {}

    def fail(query, texts):  # the first window of the first query fails
        target.setdefault("texts", texts)
        return texts == target["texts"]

    manifest = run_rerank(job, backend=ScriptedBackend(fail=fail)).to_json()
    assert manifest["summary"]["windows"]["failed"] == 1
    _, records = trace_records(job.trace_path())
    failed = [r for r in records if r["failed"]]
    assert len(failed) == 1 and failed[0]["permutation"] == list(range(20)) and "scripted" in failed[0]["error"]
    first_qid = failed[0]["qid"]
    out = read_run(job.output)
    assert out[first_qid] != read_run(str(tmp_path / "healthy.trec"))[first_qid]
    job.resume = True
    backend = ScriptedBackend()
    manifest = run_rerank(job, backend=backend).to_json()
    assert manifest["summary"]["windows"]["failed"] == 0
    assert len(backend.calls) == 2  # the failed window and the one after it (its input changed)
    assert Path(job.output).read_bytes() == (tmp_path / "healthy.trec").read_bytes()


def test_resume_survives_a_torn_last_line_and_needs_no_backend_when_done(samples, tmp_path):
    job = job_for(samples, tmp_path)
    run_rerank(job, backend=ScriptedBackend())
    expected = Path(job.output).read_bytes()
    with open(job.trace_path(), "ab") as handle:
        handle.write(b'{"type": "window", "qid": "1')
    job.resume = True
    manifest = run_rerank(job).to_json()  # no backend given and none needed: every window is in the journal
    assert manifest["summary"]["windows"]["replayed"] == 12
    assert manifest["backend"] == {"backend": "scripted"}  # the backend named, none loaded (NullBackend)
    assert Path(job.output).read_bytes() == expected
    assert Path(job.trace_path()).read_bytes().endswith(b"\n")


def test_resume_refuses_a_journal_of_other_settings(samples, tmp_path):
    job = job_for(samples, tmp_path)
    run_rerank(job, backend=ScriptedBackend())
    other = job_for(samples, tmp_path, settings=RerankSettings(depth=30, window=10, step=5), resume=True)
    with pytest.raises(InputError, match="window 20 -> 10"):
        run_rerank(other, backend=ScriptedBackend())


def test_consecutive_failures_abort_with_journal_intact(samples, tmp_path):
    job = job_for(samples, tmp_path, settings=RerankSettings(depth=30, max_consecutive_failures=3, max_inflight=1))
    with pytest.raises(RearankError, match="3 windows in a row failed"):
        run_rerank(job, backend=ScriptedBackend(fail=lambda q, t: True))
    assert not Path(job.output).exists()
    _, records = trace_records(job.trace_path())
    assert len(records) == 3 and all(r["failed"] for r in records)


class DiesOnOneQuery(ScriptedBackend):
    """The first query's second window fails at once; other queries answer late, while `close` runs."""

    async def agenerate(self, request):
        query = query_of(request.messages)
        self.target = getattr(self, "target", query)
        if query != self.target:
            await asyncio.sleep(0.3)
        elif sum(q == query for q, _ in self.calls) >= 1:
            self.calls.append((query, []))
            raise BackendError("dead")
        return await super().agenerate(request)

    async def close(self):
        await asyncio.sleep(0.6)


def test_abort_stops_other_queries_before_the_journal_closes(samples, tmp_path):
    # a window finishing after the abort used to reopen (and truncate) the closed journal
    job = job_for(samples, tmp_path, settings=RerankSettings(depth=30, max_consecutive_failures=1))
    with pytest.raises(RearankError, match="1 windows in a row failed"):
        run_rerank(job, backend=DiesOnOneQuery())
    _, records = trace_records(job.trace_path())
    assert [(r["start"], r["failed"]) for r in records] == [(10, False), (0, True)]


# -- shards and merge ---------------------------------------------------------------------------


def merged_shards_equal_unsharded(samples, tmp_path, settings: RerankSettings) -> list[str]:
    """Rerank the DL19 run whole and as 2 shards, merge the shards and check the merge equals the whole
    run byte for byte; returns the shard outputs."""
    full = job_for(samples, tmp_path, "full.trec", settings=settings)
    full.shard = None
    run_rerank(full, backend=ScriptedBackend())
    shards = []
    for i in range(2):
        job = job_for(samples, tmp_path, f"s{i}.trec", settings=settings)
        job.shard = f"{i}/2"
        run_rerank(job, backend=ScriptedBackend())
        shards.append(job.output)
    merge_runs(shards, str(tmp_path / "merged.trec"), expect=str(samples / "dl19-bm25-top100.trec"))
    assert (tmp_path / "merged.trec").read_bytes() == (tmp_path / "full.trec").read_bytes()
    return shards


def test_two_shards_merged_equal_unsharded(samples, tmp_path):
    shards = merged_shards_equal_unsharded(samples, tmp_path, RerankSettings(depth=20))
    manifest = orjson.loads((tmp_path / "merged.trec.manifest.json").read_bytes())
    assert manifest["queries"] == 43 and manifest["windows"]["total"] == 43
    with pytest.raises(InputError, match="missing"):
        merge_runs(shards[:1], str(tmp_path / "bad.trec"), expect=str(samples / "dl19-bm25-top100.trec"))
    with pytest.raises(InputError, match="two shards"):
        merge_runs([shards[0], shards[0]], str(tmp_path / "bad.trec"))
    assert not (tmp_path / "bad.trec").exists()


TIED_FILE_ORDER = ["d5", "d2", "d9", "d1", "d7", "d3"]  # d5 d2 d9 d1 tie at 7.5, d7 d3 at 6.0


def tied_inputs(tmp_path: Path, candidate_order: list[str]) -> tuple[Path, Path]:
    """A run with tied scores in neither docid order, and candidates listing the same hits in `candidate_order`."""
    score = {docid: 7.5 if i < 4 else 6.0 for i, docid in enumerate(TIED_FILE_ORDER)}
    run = tmp_path / "tied.trec"
    run.write_text("".join(f"q1 Q0 {d} {i} {score[d]} bm25\n" for i, d in enumerate(TIED_FILE_ORDER, 1)))
    hits = [{"content": f"passage about {d}", "qid": "q1", "docid": d, "rank": i, "score": score[d]}
            for i, d in enumerate(candidate_order, 1)]
    candidates = tmp_path / "tied.json"
    candidates.write_bytes(orjson.dumps([{"query": "tied query", "hits": hits}]))
    return run, candidates


@pytest.mark.parametrize("with_run", [True, False])
def test_tied_scores_are_read_in_file_order(tmp_path, with_run):
    """Spec section 2: the window holds equal scores in the order the RUN lists them (or, without a RUN, the
    candidates' list order), not in trec_eval's docid order (d9 d5 d2 d1 d7 d3); the tail keeps it too."""
    listed = ["d2", "d9", "d5", "d1", "d3", "d7"]  # another order of the same ties
    run, candidates = tied_inputs(tmp_path, listed)
    expected = TIED_FILE_ORDER if with_run else listed
    job = RerankJob(run=str(run) if with_run else None, output=str(tmp_path / "out.trec"), model="scripted",
                    backend="scripted", candidates=str(candidates), settings=RerankSettings(depth=3))
    backend = ScriptedBackend()
    run_rerank(job, backend=backend)
    _, records = trace_records(job.trace_path())
    assert [record["docids"] for record in records] == [expected[:3]]
    assert backend.calls == [("tied query", [f"passage about {d}" for d in expected[:3]])]
    out = [line.split()[2] for line in (tmp_path / "out.trec").read_text().splitlines()]
    head = [expected[i] for i in records[0]["permutation"]]
    assert out == head + expected[3:]


# -- prompt length guard and inputs -----------------------------------------------------------


def test_prompt_guard_shortens_passages_to_fit(dl19):
    candidates, _ = dl19
    queries = make_queries(candidates, ["1037798"], depth=20)
    backend = ScriptedBackend(context_length=2600)  # counts chars / 2: a full window is ~4,500 "tokens"
    settings = RerankSettings(depth=20, sampling=Sampling(max_tokens=100))
    result = rerank(queries, backend, settings)
    assert result.stats.shortened == 1 and result.stats.failed == 0
    texts = backend.calls[0][1]
    assert max(len(t) for t in texts) < 400
    tiny = ScriptedBackend(context_length=150)
    assert rerank(queries, tiny, settings).stats.failed == 1


def test_missing_texts_and_topics_are_errors_unless_skipped(dl19):
    candidates, _ = dl19
    run = {q: candidates.run[q] for q in list(candidates.run)[:2]}
    qid, docid = next(iter(run)), run[next(iter(run))][3][0]
    texts = {d: t for d, t in candidates.texts.items() if d != docid}
    fetch = lambda w: {d: texts[d] for d in w if d in texts}  # noqa: E731
    with pytest.raises(InputError, match=f"{qid}/{docid}"):
        load_queries(run, candidates.topics, fetch, depth=100, prompt="rearank", corpus_path="c.jsonl")
    loaded = load_queries(run, candidates.topics, fetch, depth=100, prompt="rearank", skip_missing=True)
    assert loaded.missing_docs == 1 and (qid, docid) in loaded.empty_passages
    # beyond --depth no text is needed
    assert load_queries(run, candidates.topics, fetch, depth=3, prompt="rearank").missing_docs == 0
    topics = {q: t for q, t in candidates.topics.items() if q != qid}
    with pytest.raises(InputError, match=qid):
        load_queries(run, topics, fetch, depth=3, prompt="rearank")
    loaded = load_queries(run, topics, fetch, depth=3, prompt="rearank", skip_missing=True)
    assert loaded.skipped_qids == [qid] and len(loaded.queries) == 1


def test_empty_passages_are_kept_and_reported(dl19):
    candidates, _ = dl19
    run = {q: candidates.run[q] for q in list(candidates.run)[:1]}
    docid = run[next(iter(run))][0][0]
    texts = dict(candidates.texts, **{docid: "  \n "})
    loaded = load_queries(run, candidates.topics, lambda w: {d: texts[d] for d in w}, depth=20, prompt="rearank")
    assert [d for _, d in loaded.empty_passages] == [docid]
    result = rerank(loaded.queries, ScriptedBackend(), RerankSettings(depth=20))
    assert docid in result.orders[next(iter(run))]


def test_two_passes_run_the_schedule_twice_on_the_updated_order(dl19):
    candidates, _ = dl19
    queries = make_queries(candidates, ["1037798"], depth=30)
    backend = ScriptedBackend()
    result = rerank(queries, backend, RerankSettings(depth=30, passes=2))
    assert result.stats.generated == 4
    one_pass = rerank(queries, ScriptedBackend(), RerankSettings(depth=30))
    # the second pass starts from the first pass's output
    text = lambda d: clean_passage(queries[0].texts[d], 400)  # noqa: E731
    assert backend.calls[2][1] == [text(d) for d in one_pass.orders["1037798"][10:30]]


def test_journal_torn_inside_its_header_starts_over(samples, tmp_path):
    job = job_for(samples, tmp_path, resume=True)
    Path(job.trace_path()).write_bytes(b'{"type": "hea')
    manifest = run_rerank(job, backend=ScriptedBackend()).to_json()
    assert manifest["summary"]["windows"]["generated"] == 12
    header, records = trace_records(job.trace_path())
    assert header["type"] == "header" and len(records) == 12


def test_failure_kinds_depend_on_the_prompt():
    from rearank_cli.parse import parse_ranking
    from rearank_cli.rerank import failure_kinds

    _, plain = parse_ranking("[2] > [1] > [3]", 3)  # a clean zero-shot RankGPT answer
    assert failure_kinds(plain.as_dict(), tags=False) == []
    assert set(failure_kinds(plain.as_dict(), tags=True)) == {"no_answer_tag", "answer_unclosed", "think_unclosed",
                                                             "not_clean"}
    _, good = parse_ranking("<think>x</think> <answer>[2] > [1] > [3]</answer>", 3)
    assert failure_kinds(good.as_dict()) == []
    _, bad = parse_ranking("<think>x</think> <answer>[2] > [2] > [7]</answer>", 3)
    assert failure_kinds(bad.as_dict()) == ["missing_ids", "duplicated_ids", "out_of_range_ids", "not_clean"]


def test_null_backend_is_the_placeholder_of_a_run_with_nothing_to_generate():
    from rearank_cli.backends.base import BackendFatal, NullBackend, Request

    backend = NullBackend()
    assert backend.context_length is None and backend.preferred_inflight is None
    with pytest.raises(BackendFatal, match="no backend is loaded"):
        asyncio.run(backend.agenerate(Request([])))
