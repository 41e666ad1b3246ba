"""`rearank augment` (spec section 6): hand-computed r_init/r_best, skips, determinism, layouts, bad input."""

from __future__ import annotations

import gzip
import math
import random
import sys
from pathlib import Path

import orjson
import pytest

from rearank_cli.augment.sampling import Settings, draw_subsets, query_seed, sample_scores
from rearank_cli.errors import InputError, MissingDependency
from rearank_cli.formats import read_qrels, read_run
from rearank_cli.jobs.augment import augment
from rearank_cli.prompts import build_messages

L3 = math.log2(3)  # discount of rank 2; rank 1 is log2(2) = 1, rank 3 is log2(4) = 2

# A hand-made case. q1: relevant d2 (2) and d4 (1) in the run, d9 (3) judged but outside the run, so
# r_best < 1. q2: its only relevant doc is not retrieved. q3: not in qrels. q4: nothing relevant in
# qrels. q5: no topic. q6: two candidates (< window 3). q7: one relevant doc e1.
RUN = {
    "q1": ["d1", "d2", "d3", "d4"],
    "q2": ["f1", "f2", "f3"],
    "q3": ["g1", "g2", "g3"],
    "q4": ["h1", "h2", "h3"],
    "q5": ["m1", "m2", "m3"],
    "q6": ["k1", "k2"],
    "q7": ["e1", "e2", "e3", "e4"],
}
QRELS = {
    "q1": {"d2": 2, "d3": 0, "d4": 1, "d9": 3},
    "q2": {"f9": 2, "f1": 0},
    "q4": {"h1": 0, "h2": 0},
    "q5": {"m1": 1},
    "q6": {"k1": 1},
    "q7": {"e1": 1, "e2": 0, "e3": 0, "e4": 0},
}
TOPICS = {"q1": "first query", "q2": "second", "q3": "third", "q4": "fourth", "q6": "sixth", "q7": "seventh"}
IDCG_Q1 = 3 + 2 / L3 + 1 / 2


def text_of(docid: str) -> str:
    """Raw text with messy whitespace: rows keep it raw, the prompt cleans it."""
    return f"  passage {docid}\n\twith   spaces  "


def write_case(folder: Path, run: dict[str, list[str]] = RUN) -> dict[str, Path]:
    """Write the hand-made run, qrels, topics and corpus; return their paths."""
    paths = {name: folder / name for name in ("run.trec", "qrels.txt", "topics.tsv", "corpus.jsonl")}
    paths["run.trec"].write_text("".join(
        f"{qid} Q0 {docid} {rank} {10.0 - rank} bm25\n"
        for qid, docids in run.items() for rank, docid in enumerate(docids, 1)
    ))
    paths["qrels.txt"].write_text("".join(
        f"{qid} 0 {docid} {rel}\n" for qid, judged in QRELS.items() for docid, rel in judged.items()
    ))
    paths["topics.tsv"].write_text("".join(f"{qid}\t{text}\n" for qid, text in TOPICS.items()))
    docids = sorted({docid for docs in RUN.values() for docid in docs})
    paths["corpus.jsonl"].write_text("".join(
        orjson.dumps({"id": docid, "contents": text_of(docid)}).decode() + "\n" for docid in docids
    ))
    return {name.split(".")[0]: path for name, path in paths.items()}


def run_case(folder: Path, settings: Settings, **kwargs):
    """Run the core augment on the hand-made case; returns (rows, summary)."""
    paths = write_case(folder)
    out = folder / "out.jsonl"
    summary = augment(
        str(paths["run"]), str(paths["qrels"]), str(out), settings,
        topics_path=str(paths["topics"]), corpus_path=str(paths["corpus"]), **kwargs,
    )
    return read_rows(out), summary


def read_rows(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


SMALL = Settings(samples_per_query=10, window=3, depth=4)


# ---------------------------------------------------------------- r_init / r_best by hand


def test_sample_scores_by_hand_relevant_doc_outside_sample():
    # judged: 3 (not in the sample), 2, 1, 0; sample presented as [0, 2, 1]
    r_init, r_best = sample_scores([0, 2, 1], [3, 2, 1, 0])
    ideal = 3 / 1 + 2 / L3 + 1 / 2
    assert r_init == pytest.approx((0 / 1 + 2 / L3 + 1 / 2) / ideal)
    assert r_best == pytest.approx((2 / 1 + 1 / L3) / ideal)
    assert r_best < 1


def test_sample_scores_cut_at_ten():
    # the only relevant doc at presented rank 11: r_init 0, r_best 1 (IDCG of one label-1 doc is 1)
    labels = [0] * 10 + [1] + [0] * 9
    assert sample_scores(labels, [1, 0, 0]) == (0.0, 1.0)
    labels = [0] * 9 + [2] + [0] * 10
    r_init, r_best = sample_scores(labels, [2])
    assert r_init == pytest.approx(1 / math.log2(11)) and r_best == 1.0


def test_rows_of_hand_made_query(tmp_path):
    rows, _ = run_case(tmp_path, SMALL)
    q1 = [row for row in rows if row["qid"] == "q1"]
    # C(4, 3) = 4 subsets of d1..d4, all drawn (enumerated), presented in first-stage order
    expected = {
        ("d1", "d2", "d3"): ([0, 2, 0], 2 / L3, 2),
        ("d1", "d2", "d4"): ([0, 2, 1], 2 / L3 + 1 / 2, 2 + 1 / L3),
        ("d1", "d3", "d4"): ([0, 0, 1], 1 / 2, 1),
        ("d2", "d3", "d4"): ([2, 0, 1], 2 + 1 / 2, 2 + 1 / L3),
    }
    assert sorted(tuple(row["docids"]) for row in q1) == sorted(expected)
    for index, row in enumerate(q1):
        labels, dcg_init, dcg_best = expected[tuple(row["docids"])]
        assert row["labels"] == labels
        assert row["r_init"] == pytest.approx(dcg_init / IDCG_Q1)
        assert row["r_best"] == pytest.approx(dcg_best / IDCG_Q1)
        assert row["r_best"] < 1
        assert row["idcg"] == pytest.approx(IDCG_Q1)
        assert row["first_stage_ranks"] == [int(docid[1]) for docid in row["docids"]]
        assert row["first_stage_scores"] == [10.0 - rank for rank in row["first_stage_ranks"]]
        assert row["passages"] == [text_of(docid) for docid in row["docids"]]
        assert row["prompt"] == build_messages("rearank", "first query", row["passages"])
        assert "[1] passage d" in row["prompt"][3]["content"]  # cleaned in the prompt only
        assert (row["query"], row["sample"], row["window"], row["prompt_name"]) == ("first query", index, 3, "rearank")


def test_threshold_and_no_relevant_drops(tmp_path):
    rows, summary = run_case(tmp_path, Settings(samples_per_query=10, window=3, depth=4, min_init_ndcg=0.2))
    q1 = {tuple(row["docids"]) for row in rows if row["qid"] == "q1"}
    assert ("d1", "d3", "d4") not in q1 and len(q1) == 3  # r_init = 0.5 / 4.76 = 0.105 < 0.2
    q7 = {tuple(row["docids"]) for row in rows if row["qid"] == "q7"}
    assert ("e2", "e3", "e4") not in q7 and len(q7) == 3  # no relevant doc
    assert summary.dropped["r_init < 0.2"] == 1
    assert summary.dropped["no relevant doc"] == 1
    assert all(row["r_init"] >= 0.2 for row in rows)


def test_summary_counts_skips_by_reason(tmp_path, caplog):
    rows, summary = run_case(tmp_path, SMALL)
    assert summary.queries_in_run == 7 and summary.queries_used == 3
    assert summary.skipped_qids == {
        "no relevant doc in the top depth": ["q2"],
        "not in qrels": ["q3"],
        "no relevant doc in qrels": ["q4"],
        "no query text": ["q5"],
    }
    assert summary.short_queries == 1  # q6 used with its 2 docs
    assert summary.queries_short_of_subsets == 3  # 4, 1 and 4 distinct subsets < 10 requested
    assert (summary.distinct, summary.kept, summary.dropped["no relevant doc"]) == (9, 8, 1)
    assert len(rows) == summary.kept
    # labels of kept docs: q1 [0,2,0] [0,2,1] [0,0,1] [2,0,1]; q6 [1,0]; q7 3 x [1,0,0]
    assert dict(summary.labels) == {0: 6 + 1 + 6, 1: 7, 2: 3}
    assert summary.unjudged == 4  # d1 three times, k2 once
    assert summary.sum_r_init == pytest.approx(sum(row["r_init"] for row in rows))
    q6 = [row for row in rows if row["qid"] == "q6"]
    assert [(row["docids"], row["window"], row["r_init"], row["r_best"]) for row in q6] == [
        (["k1", "k2"], 2, 1.0, 1.0)
    ]


def test_skip_short_and_warnings(tmp_path, caplog):
    rows, summary = run_case(tmp_path, Settings(samples_per_query=10, window=3, depth=4, skip_short=True))
    assert "q6" not in {row["qid"] for row in rows}
    assert summary.skipped_qids["fewer candidates than the window (--skip-short)"] == ["q6"]
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "not in qrels: q3" in messages and "no query text: q5" in messages


# ---------------------------------------------------------------- sampling


def test_draw_subsets_distinct_and_bounded():
    rng = random.Random(1)
    subsets, duplicates = draw_subsets(100, 20, 50, rng, 500)
    assert len(subsets) == 50 == len(set(subsets))
    assert all(len(s) == 20 and list(s) == sorted(s) and s[-1] < 100 for s in subsets)
    # 231 possible subsets of 20 out of 22: 200 requested, only 200 attempts -> gives up with duplicates
    subsets, duplicates = draw_subsets(22, 20, 200, random.Random(2), 200)
    assert len(subsets) + duplicates == 200 and duplicates > 0 and len(set(subsets)) == len(subsets)
    # at most `count` possible: all of them, no randomness
    assert draw_subsets(4, 3, 10, rng, 1) == ([(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)], 0)


def test_gives_up_after_bounded_attempts_and_counts(tmp_path):
    paths = write_case(tmp_path, {"q1": ["d1", "d2", "d3", "d4"]})
    # 6 pairs possible, 5 requested, 5 attempts: a seed that draws a duplicate must give up, counted
    for seed in range(100):
        settings = Settings(5, 2, 4, min_init_ndcg=0, seed=seed, attempts_per_sample=1)
        summary = augment(str(paths["run"]), str(paths["qrels"]), str(tmp_path / "o.jsonl"), settings,
                          topics_path=str(paths["topics"]), corpus_path=str(paths["corpus"]))
        if summary.dropped["duplicate draw"]:
            break
    assert summary.draws == 5 and summary.distinct == 5 - summary.dropped["duplicate draw"] < 5
    assert summary.queries_short_of_subsets == 1
    rows = read_rows(tmp_path / "o.jsonl")
    assert len({tuple(row["docids"]) for row in rows}) == len(rows) == summary.kept
    assert summary.kept + summary.dropped["no relevant doc"] == summary.distinct  # (d1, d3) has none


def test_query_seed_depends_on_seed_and_qid_only():
    assert query_seed(42, "q1") == query_seed(42, "q1")
    assert len({query_seed(42, "q1"), query_seed(43, "q1"), query_seed(42, "q2")}) == 3


# ---------------------------------------------------------------- real data: DL19 BM25 + NIST qrels


DL19 = ["sample_runs/dl19-bm25-top100.trec", "--qrels", "sample_runs/dl19-qrels.txt",
        "--candidates", "sample_runs/dl19-bm25-top100.candidates.json.gz"]


@pytest.fixture(scope="module")
def dl19_rows(tmp_path_factory, cli):
    out = tmp_path_factory.mktemp("dl19") / "train.jsonl"
    result = cli("augment", *DL19, "--samples-per-query", "10", "-o", out)
    assert result.returncode == 0, result.stderr.decode()
    return read_rows(out), result.stderr.decode(), out


def test_dl19_rows_against_pytrec_eval(dl19_rows, samples):
    """r_init and r_best agree with trec_eval's ndcg_cut_10 (an independent implementation)."""
    import pytrec_eval

    rows, _, _ = dl19_rows
    qrels = read_qrels(str(samples / "dl19-qrels.txt"))
    run = read_run(str(samples / "dl19-bm25-top100.trec"))
    assert {row["qid"] for row in rows} <= set(run) and len({row["qid"] for row in rows}) > 30
    keys, sample_qrels, init_run, best_run = [], {}, {}, {}
    for row in rows:
        key = f"{row['qid']}/{row['sample']}"
        keys.append(key)
        sample_qrels[key] = qrels[row["qid"]]
        init_run[key] = {docid: 100.0 - i for i, docid in enumerate(row["docids"])}
        best = sorted(zip(row["labels"], row["docids"], strict=True), key=lambda x: -x[0])
        best_run[key] = {docid: 100.0 - i for i, (_, docid) in enumerate(best)}
        hits = dict(run[row["qid"]])
        ranks = {docid: rank for rank, (docid, _) in enumerate(run[row["qid"]], 1)}
        assert row["first_stage_ranks"] == sorted(row["first_stage_ranks"])
        assert row["first_stage_ranks"] == [ranks[docid] for docid in row["docids"]]
        assert row["first_stage_scores"] == [hits[docid] for docid in row["docids"]]
        assert row["labels"] == [qrels[row["qid"]].get(docid, 0) for docid in row["docids"]]
        assert len(set(row["docids"])) == 20 and row["r_init"] >= 0.1 and any(row["labels"])
    evaluator = pytrec_eval.RelevanceEvaluator(sample_qrels, {"ndcg_cut_10"})
    init, best = evaluator.evaluate(init_run), evaluator.evaluate(best_run)
    for row, key in zip(rows, keys, strict=True):
        assert row["r_init"] == pytest.approx(init[key]["ndcg_cut_10"], abs=1e-9)
        assert row["r_best"] == pytest.approx(best[key]["ndcg_cut_10"], abs=1e-9)


def test_dl19_summary_on_stderr_and_file(dl19_rows):
    rows, stderr, out = dl19_rows
    assert "queries: 43 in run, 43 used, 0 skipped" in stderr
    assert f"{len(rows)} kept" in stderr and "mean r_init" in stderr
    summary = orjson.loads(Path(str(out) + ".summary.json").read_bytes())
    counts = summary["counts"]
    assert counts["kept"] == len(rows) and counts["draws"] == 430
    assert counts["kept"] + sum(counts["dropped"].values()) == counts["draws"]
    assert summary["settings"]["samples_per_query"] == 10 and summary["prompt_hash"]
    by_query = {}
    for row in rows:
        by_query.setdefault(row["qid"], set()).add(tuple(row["docids"]))
    assert sum(len(sets) for sets in by_query.values()) == len(rows)  # no duplicate subsets


def test_deterministic_and_order_independent(dl19_rows, tmp_path, cli, samples):
    rows, _, out = dl19_rows
    again = tmp_path / "again.jsonl"
    assert cli("augment", *DL19, "--samples-per-query", "10", "-o", again).returncode == 0
    assert again.read_bytes() == out.read_bytes()
    # the same queries, reversed in the run file, and only 5 of them: the same samples per query
    lines = (samples / "dl19-bm25-top100.trec").read_text().splitlines(keepends=True)
    qids = list(dict.fromkeys(line.split()[0] for line in lines))[::-1][:5]
    shard = tmp_path / "shard.trec"
    shard.write_text("".join(line for qid in qids for line in lines if line.split()[0] == qid))
    part = tmp_path / "part.jsonl"
    args = [shard, *DL19[1:], "--samples-per-query", "10", "-o", part, "--summary", tmp_path / "s.json"]
    assert cli("augment", *args).returncode == 0
    expected = [row for qid in qids for row in rows if row["qid"] == qid]
    assert read_rows(part) == expected
    other = tmp_path / "other.jsonl"
    assert cli("augment", *args[:-4], "--seed", "7", "-o", other).returncode == 0
    assert read_rows(other) != expected


# ---------------------------------------------------------------- output layouts


def test_parquet_verl_layout_and_stdout(tmp_path, cli):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    paths = write_case(tmp_path)
    common = [paths["run"], "--qrels", paths["qrels"], "--topics", paths["topics"], "--corpus",
              paths["corpus"], "--window", "3", "--depth", "4", "--samples-per-query", "10"]
    result = cli("augment", *common, "--format", "parquet", "-o", "-")
    assert result.returncode == 0, result.stderr.decode()
    records = pq.read_table(pa.BufferReader(result.stdout)).to_pylist()
    jsonl = cli("augment", *common, "--prompt", "rearank")
    rows = [orjson.loads(line) for line in jsonl.stdout.splitlines()]
    assert len(records) == len(rows) == 8
    for index, (record, row) in enumerate(zip(records, rows, strict=True)):
        assert record["data_source"] == "rearank" and record["ability"] == "rerank"
        assert record["prompt"] == row["prompt"]
        assert record["reward_model"] == {"style": "rule", "ground_truth": {
            key: row[key] for key in ("labels", "r_init", "r_best", "idcg")}}
        extra = dict(record["extra_info"])
        assert (extra.pop("split"), extra.pop("index")) == ("train", index)
        assert extra == {key: value for key, value in row.items() if key != "prompt"}


def test_parquet_without_pyarrow_is_a_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    paths = write_case(tmp_path)
    with pytest.raises(MissingDependency, match="pip install"):
        augment(str(paths["run"]), str(paths["qrels"]), str(tmp_path / "o.parquet"), SMALL,
                topics_path=str(paths["topics"]), corpus_path=str(paths["corpus"]), fmt="parquet")
    assert not list(tmp_path.glob("o.parquet*"))


def test_gzip_output_and_rankgpt_prompt(tmp_path):
    paths = write_case(tmp_path)
    out = tmp_path / "o.jsonl.gz"
    augment(str(paths["run"]), str(paths["qrels"]), str(out), Settings(10, 3, 4, prompt="rankgpt"),
            topics_path=str(paths["topics"]), corpus_path=str(paths["corpus"]))
    rows = [orjson.loads(line) for line in gzip.decompress(out.read_bytes()).splitlines()]
    assert rows and all(row["prompt_name"] == "rankgpt" for row in rows)
    assert rows[0]["prompt"] == build_messages("rankgpt", rows[0]["query"], rows[0]["passages"])


# ---------------------------------------------------------------- bad input


def test_window_larger_than_depth_is_exit_2(tmp_path, cli):
    paths = write_case(tmp_path)
    out = tmp_path / "o.jsonl"
    result = cli("augment", paths["run"], "--qrels", paths["qrels"], "--topics", paths["topics"],
                 "--corpus", paths["corpus"], "--window", "30", "--depth", "20", "-o", out)
    assert result.returncode == 2
    assert "--window 30 is larger than --depth 20" in result.stderr.decode()
    assert not out.exists() and list(tmp_path.glob(".o.jsonl*")) == []


@pytest.mark.parametrize("texts, message", [
    ([], "give --topics and --corpus, or --candidates"),
    (["--topics", "T"], "--topics given without --corpus"),
    (["--corpus", "X"], "--corpus given without --topics"),
    (["--candidates", "C", "--topics", "T", "--corpus", "X"], "either it or --topics and --corpus"),
])
def test_text_sources_must_be_one_of_two(tmp_path, texts, message):
    paths = write_case(tmp_path)
    names = {"T": str(paths["topics"]), "X": str(paths["corpus"]), "C": "c.json"}
    args = {"topics_path": None, "corpus_path": None, "candidates_path": None}
    for flag, value in zip(texts[::2], texts[1::2], strict=True):
        args[flag[2:] + "_path"] = names[value]
    with pytest.raises(InputError, match=message):
        augment(str(paths["run"]), str(paths["qrels"]), str(tmp_path / "o.jsonl"), SMALL, **args)


def test_doc_without_text_is_an_error_unless_skip_missing(tmp_path, cli):
    paths = write_case(tmp_path)
    lines = paths["corpus"].read_text().splitlines(keepends=True)
    paths["corpus"].write_text("".join(line for line in lines if '"d2"' not in line))
    args = [paths["run"], "--qrels", paths["qrels"], "--topics", paths["topics"], "--corpus", paths["corpus"],
            "--window", "3", "--depth", "4", "--samples-per-query", "10"]
    result = cli("augment", *args, "-o", tmp_path / "o.jsonl")
    assert result.returncode == 2 and "'d2'" in result.stderr.decode() and "--skip-missing" in result.stderr.decode()
    assert not (tmp_path / "o.jsonl").exists()
    result = cli("augment", *args, "--skip-missing", "-o", tmp_path / "o.jsonl")
    assert result.returncode == 0, result.stderr.decode()
    assert "1 candidate doc(s) without text dropped" in result.stderr.decode()
    rows = [row for row in read_rows(tmp_path / "o.jsonl") if row["qid"] == "q1"]
    assert [row["docids"] for row in rows] == [["d1", "d3", "d4"]]  # the only 3 docs left
    assert rows[0]["first_stage_ranks"] == [1, 3, 4]


def test_bad_qrels_line_is_exit_2(tmp_path, cli):
    paths = write_case(tmp_path)
    paths["qrels"].write_text("q1 0 d2 high\n")
    result = cli("augment", paths["run"], "--qrels", paths["qrels"], "--topics", paths["topics"],
                 "--corpus", paths["corpus"])
    assert result.returncode == 2 and "qrels.txt:1" in result.stderr.decode()
    assert result.stdout == b""


def test_stdout_jsonl_matches_file(tmp_path, cli):
    paths = write_case(tmp_path)
    args = [paths["run"], "--qrels", paths["qrels"], "--topics", paths["topics"], "--corpus", paths["corpus"],
            "--window", "3", "--depth", "4"]
    result = cli("augment", *args)
    assert result.returncode == 0
    out = tmp_path / "o.jsonl"
    augment(str(paths["run"]), str(paths["qrels"]), str(out), Settings(window=3, depth=4),
            topics_path=str(paths["topics"]), corpus_path=str(paths["corpus"]))
    assert result.stdout == out.read_bytes() != b""


def test_tied_scores_keep_the_run_file_order(tmp_path):
    """Spec section 2: equal scores are read in the file's order (d3, d1, d4, d2), not trec_eval's docid
    rule (d4, d3, d2, d1): samples, first-stage ranks and r_init follow the file."""
    paths = write_case(tmp_path)
    paths["run"].write_text("".join(f"q1 Q0 {docid} {rank} 5.0 bm25\n"
                                    for rank, docid in enumerate(["d3", "d1", "d4", "d2"], 1)))
    out = tmp_path / "tied.jsonl"
    augment(str(paths["run"]), str(paths["qrels"]), str(out), SMALL,
            topics_path=str(paths["topics"]), corpus_path=str(paths["corpus"]))
    rows = read_rows(out)
    file_rank = {"d3": 1, "d1": 2, "d4": 3, "d2": 4}
    labels = QRELS["q1"]
    assert sorted(tuple(row["docids"]) for row in rows) == [
        ("d1", "d4", "d2"), ("d3", "d1", "d2"), ("d3", "d1", "d4"), ("d3", "d4", "d2")]
    for row in rows:
        assert row["first_stage_ranks"] == [file_rank[docid] for docid in row["docids"]] == sorted(
            row["first_stage_ranks"])
        init = sum(labels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(row["docids"]))
        assert row["r_init"] == pytest.approx(init / IDCG_Q1)
    by_docs = {tuple(row["docids"]): row for row in rows}
    # {d1, d2, d3}: file order d3 d1 d2 -> labels 0 0 2; trec_eval's order d3 d2 d1 would give 0 2 0
    assert by_docs[("d3", "d1", "d2")]["labels"] == [0, 0, 2]
    assert by_docs[("d3", "d1", "d2")]["r_init"] == pytest.approx((2 / 2) / IDCG_Q1)
