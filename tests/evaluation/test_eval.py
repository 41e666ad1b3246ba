"""`rearank eval`: equal to trec_eval (pyserini's bundled one, the reference), published numbers,
comparisons and significance, the fast run reader, bad input."""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import json
import math
import random
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rearank_cli import evaluation as ev
from rearank_cli.errors import InputError
from rearank_cli.evaluation import providers, significance
from rearank_cli.formats import trec as trec_format
from rearank_cli.formats.trec import read_qrels, read_run, read_run_scores, write_run
from rearank_cli.jobs.eval import run_eval

DEFAULT_TREC = ["-m", "ndcg_cut.5,10", "-m", "map_cut.1000", "-m", "recall.100"]


@pytest.fixture(scope="session")
def trec_eval():
    """pyserini's trec_eval (the C trec_eval run through Java): returns its stdout lines."""
    from rearank_cli.lucene import java as jvm

    jvm.start()
    from pyserini.eval.trec_eval import trec_eval as pyserini_trec_eval

    def run(*args: str) -> list[str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            pyserini_trec_eval(["trec_eval", *map(str, args)])
        return [line for line in out.getvalue().splitlines() if line.strip()]

    return run


@pytest.fixture(scope="session")
def dl19(samples):
    return {
        "qrels": samples / "dl19-qrels.txt",
        "bm25": samples / "dl19-bm25-top100.trec",
        "vicuna": samples / "dl19-rankvicuna-7b.trec",
        "gpt35": samples / "dl19-rankgpt-gpt35.trec",
    }


def ours(tmp_path: Path, runs, qrels, measures, **options) -> str:
    out = tmp_path / f"out-{random.random()}.txt"
    run_eval([str(r) for r in runs], str(qrels), measures, output=str(out), **options)
    return out.read_text()


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------- published numbers and trec_eval equality


@pytest.mark.parametrize("name,published", [("bm25", 0.5058), ("vicuna", 0.6682), ("gpt35", 0.6868)])
def test_published_dl19_ndcg10(dl19, name, published):
    qrels = read_qrels(str(dl19["qrels"]))
    result = ev.Evaluator(qrels, ev.parse_measures(["nDCG@10"])).evaluate_file(str(dl19[name]))
    assert f"{result.means[ev.Measure('ndcg_cut', 10)]:.4f}" == f"{published:.4f}"


@pytest.mark.parametrize("level", [1, 2])
def test_default_measures_equal_trec_eval_on_bm25(trec_eval, dl19, tmp_path, level):
    expected = trec_eval("-c", "-l", level, *DEFAULT_TREC, "-m", "judged.10", dl19["qrels"], dl19["bm25"])
    text = ours(tmp_path, [dl19["bm25"]], dl19["qrels"], None, level=level, fmt="trec")
    assert lines_of(text) == expected
    assert len(expected) == 5


def messy_run(dl19, tmp_path: Path) -> tuple[Path, dict]:
    """The BM25 run with 3 queries dropped, scores rounded (ties), unjudged docs on top, and an extra query.

    Lines are written in trec_eval order, so pyserini's file-order Judged@10 sees what we see.
    """
    run = read_run(str(dl19["bm25"]))
    qids = sorted(run)
    dropped = qids[:3]
    messy = {}
    for i, qid in enumerate(qids[3:]):
        hits = [(docid, round(score, 0)) for docid, score in run[qid]]
        top = hits[0][1]
        hits += [(str(9_000_000_000 + i * 10 + j), top + 1.0) for j in range(i % 4)]
        messy[qid] = trec_format.trec_order(hits)
    messy["999999"] = [("1", 2.0), ("2", 1.0)]
    path = tmp_path / "messy.trec"
    write_run(str(path), messy, tag="messy")
    ties = sum(len(h) - len({s for _, s in h}) for h in messy.values())
    return path, {"dropped": dropped, "ties": ties}


def test_missing_queries_ties_unjudged_equal_trec_eval(trec_eval, dl19, tmp_path):
    path, facts = messy_run(dl19, tmp_path)
    assert facts["ties"] > 100
    args = ["-c", "-l", "2", *DEFAULT_TREC, "-m", "map", "-m", "P.10", "-m", "recip_rank", "-m", "bpref"]
    expected = trec_eval(*args, dl19["qrels"], path)
    measures = ["nDCG@10", "nDCG@5", "MAP@1000", "R@100", "MAP", "P@10", "MRR", "bpref"]
    text = ours(tmp_path, [path], dl19["qrels"], measures, level=2, fmt="trec")
    assert lines_of(text) == expected
    per_query = trec_eval("-c", "-q", *args, dl19["qrels"], path)
    text = ours(tmp_path, [path], dl19["qrels"], measures, level=2, fmt="trec", per_query=True)
    assert lines_of(text) == per_query
    assert not any(f"\t{qid}\t" in line for qid in facts["dropped"] for line in per_query)


def test_ties_in_file_order_still_evaluate_as_trec_eval(trec_eval, dl19, tmp_path):
    """A first-stage file whose tied scores are listed in docid-ascending order (as Anserini ranks them):
    eval keeps trec_eval's rule (docid descending), so it equals the C trec_eval, not the file order."""
    run = read_run(str(dl19["bm25"]))
    path, file_order = tmp_path / "tied.trec", tmp_path / "file-order.trec"
    tied = {qid: sorted(((d, float(round(s))) for d, s in hits), key=lambda hit: (-hit[1], hit[0]))
            for qid, hits in run.items()}
    write_run(str(path), tied, tag="tied")
    assert read_run_scores(str(path)) == {q: dict(h) for q, h in tied.items()}  # lines as listed
    write_run(str(file_order), {q: [(d, float(len(h) - i)) for i, (d, _) in enumerate(h)] for q, h in tied.items()})
    args = ["-c", *DEFAULT_TREC]
    expected = trec_eval(*args, dl19["qrels"], path)
    assert lines_of(ours(tmp_path, [path], dl19["qrels"], ["nDCG@5", "nDCG@10", "MAP@1000", "R@100"],
                         fmt="trec")) == expected
    assert expected != trec_eval(*args, dl19["qrels"], file_order)  # the tie rule matters on this file


def test_mrr_at_10_is_trec_eval_with_depth_10(trec_eval, dl19, tmp_path):
    path, _ = messy_run(dl19, tmp_path)
    expected = trec_eval("-c", "-M", "10", "-m", "recip_rank", dl19["qrels"], path)
    assert lines_of(ours(tmp_path, [path], dl19["qrels"], ["MRR@10"], fmt="trec")) == expected
    assert expected != trec_eval("-c", "-m", "recip_rank", dl19["qrels"], path)


def test_judged_at_10_equals_pyserini_without_extra_queries(trec_eval, dl19, tmp_path):
    path, facts = messy_run(dl19, tmp_path)
    run = {q: h for q, h in read_run(str(path)).items() if q != "999999"}
    write_run(str(path), run)
    expected = trec_eval("-c", "-m", "judged.10", dl19["qrels"], path)
    result = ev.Evaluator(read_qrels(str(dl19["qrels"])), ev.parse_measures(["Judged@10"])).evaluate_file(str(path))
    assert expected == [f"judged_10             \tall\t{result.means[ev.Measure('judged', 10)]:.4f}"]
    assert result.missed == facts["dropped"]
    assert result.means[ev.Measure("judged", 10)] < 0.95


def test_unordered_gzip_and_stdin_runs_give_the_same_numbers(dl19, tmp_path, monkeypatch):
    lines = dl19["gpt35"].read_text().splitlines(keepends=True)
    random.Random(1).shuffle(lines)
    shuffled = tmp_path / "shuffled.trec.gz"
    shuffled.write_bytes(gzip.compress("".join(lines).encode()))
    measures = ["nDCG@10", "MAP@1000", "MRR@10", "Judged@10", "P@5"]
    expected = ours(tmp_path, [dl19["gpt35"]], dl19["qrels"], measures, fmt="json")
    got = ours(tmp_path, [shuffled], dl19["qrels"], measures, fmt="json")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("".join(lines).encode())))
    from_stdin = ours(tmp_path, ["-"], dl19["qrels"], measures, fmt="json")
    means = [json.loads(text)["runs"][0]["means"] for text in (expected, got, from_stdin)]
    assert means[0] == means[1] == means[2]


def test_streaming_in_small_batches_changes_nothing(dl19, monkeypatch):
    qrels = read_qrels(str(dl19["qrels"]))
    evaluator = ev.Evaluator(qrels, ev.parse_measures(ev.DEFAULT_MEASURES))
    whole = evaluator.evaluate_file(str(dl19["vicuna"]))
    monkeypatch.setattr(trec_format, "_CHUNK_BYTES", 333)
    small = evaluator.evaluate_file(str(dl19["vicuna"]), batch_hits=150)
    assert small.per_query == whole.per_query and small.means == whole.means


# ---------------------------------------------------------------- comparison, significance, outputs


def test_baseline_comparison_table_and_json(dl19, tmp_path):
    runs = [dl19["vicuna"], dl19["gpt35"]]
    text = ours(tmp_path, runs, dl19["qrels"], None, baseline=str(dl19["bm25"]))
    rows = text.splitlines()
    assert rows[0].split()[:6] == ["run", "nDCG@10", "nDCG@5", "MAP@1000", "R@100", "Judged@10"]
    assert rows[1].startswith(str(dl19["bm25"]) + " (baseline)")
    assert "0.6682*+" in rows[2] and "0.6868*+" in rows[3]
    data = json.loads(ours(tmp_path, runs, dl19["qrels"], None, baseline=str(dl19["bm25"]), fmt="json",
                           per_query=True))
    qrels = read_qrels(str(dl19["qrels"]))
    base, vicuna = data["runs"][0], data["runs"][1]
    assert base["run"] == str(dl19["bm25"]) and "vs_baseline" not in base
    cmp = vicuna["vs_baseline"]["nDCG@10"]
    deltas = [vicuna["per_query"][q]["nDCG@10"] - base["per_query"][q]["nDCG@10"] for q in qrels]
    assert (cmp["win"], cmp["tie"], cmp["loss"]) == (
        sum(d > 1e-12 for d in deltas), sum(abs(d) <= 1e-12 for d in deltas), sum(d < -1e-12 for d in deltas))
    assert cmp["p_ttest"] < 0.001 and cmp["p_randomization"] < 0.001
    assert math.isclose(cmp["delta"], vicuna["means"]["nDCG@10"] - base["means"]["nDCG@10"])
    assert vicuna["vs_baseline"]["R@100"]["p_ttest"] == 1.0  # a reranker of the top 100 keeps R@100
    assert "Judged@10" not in vicuna["vs_baseline"]


def test_per_query_table_has_deltas(dl19, tmp_path):
    text = ours(tmp_path, [dl19["vicuna"]], dl19["qrels"], ["nDCG@10"], baseline=str(dl19["bm25"]),
                per_query=True)
    data = json.loads(ours(tmp_path, [dl19["vicuna"]], dl19["qrels"], ["nDCG@10"], baseline=str(dl19["bm25"]),
                           per_query=True, fmt="json"))
    row = next(line for line in text.splitlines() if line.startswith("1037798 "))
    qid, _, base, run, delta = row.split()
    assert float(base) == round(data["runs"][0]["per_query"][qid]["nDCG@10"], 4)
    assert float(delta) == pytest.approx(float(run) - float(base), abs=1.5e-4)


def test_trec_format_several_runs_has_runid_lines(dl19, tmp_path):
    text = ours(tmp_path, [dl19["bm25"], dl19["vicuna"]], dl19["qrels"], ["nDCG@10"], fmt="trec")
    assert lines_of(text) == [
        f"runid                 \tall\t{dl19['bm25']}", "ndcg_cut_10           \tall\t0.5058",
        f"runid                 \tall\t{dl19['vicuna']}", "ndcg_cut_10           \tall\t0.6682",
    ]


def test_paired_t_test_matches_scipy():
    from scipy.stats import ttest_rel

    rng = random.Random(3)
    a = [rng.random() for _ in range(50)]
    b = [x + rng.gauss(0.05, 0.2) for x in a]
    assert significance.paired_t_test([y - x for x, y in zip(a, b, strict=True)]) == pytest.approx(
        ttest_rel(b, a).pvalue, rel=1e-9)
    assert significance.paired_t_test([0.0] * 10) == 1.0
    assert significance.paired_t_test([0.1] * 10) == 0.0


def exact_sign_flip_p(diffs: list[float]) -> float:
    observed = abs(sum(diffs))
    flips = list(itertools.product([-1, 1], repeat=len(diffs)))
    return sum(abs(sum(s * d for s, d in zip(signs, diffs, strict=True))) >= observed - 1e-12
               for signs in flips) / len(flips)


def test_randomization_test_against_exact_enumeration():
    rng = random.Random(5)
    diffs = [rng.gauss(0.05, 0.1) for _ in range(12)]
    exact = exact_sign_flip_p(diffs)
    p = significance.randomization_test(diffs, permutations=20_000, seed=1)
    assert abs(p - exact) < 0.015
    assert p == significance.randomization_test(diffs, permutations=20_000, seed=1)
    assert significance.randomization_test([0.0] * 5) == 1.0
    assert significance.randomization_test([0.2] * 30, permutations=1000) == pytest.approx(1 / 1001)


# ---------------------------------------------------------------- measure names


@pytest.mark.parametrize("text,keys", [
    ("nDCG@10", ["ndcg_cut_10"]), ("ndcg_cut.10", ["ndcg_cut_10"]), ("ndcg_cut_10", ["ndcg_cut_10"]),
    ("MAP", ["map"]), ("map", ["map"]), ("MAP@1000", ["map_cut_1000"]), ("R@100", ["recall_100"]),
    ("recall.100", ["recall_100"]), ("P@10", ["P_10"]), ("P.10", ["P_10"]), ("MRR", ["recip_rank"]),
    ("recip_rank", ["recip_rank"]), ("Judged@10", ["judged_10"]), ("judged.10", ["judged_10"]),
    ("ndcg_cut.5,10", ["ndcg_cut_5", "ndcg_cut_10"]), ("nDCG@10,MAP", ["ndcg_cut_10", "map"]),
    ("success", ["success_1", "success_5", "success_10"]), ("bpref", ["bpref"]), ("nDCG", ["ndcg"]),
    ("gm_map", ["gm_map"]), ("P.5,7,3", ["P_5", "P_7", "P_3"]), ("ndcg_cut.23.4", ["ndcg_cut_23"]),
    ("ndcg.1=3,2=9", ["ndcg_1=3,2=9"]), ("utility.2,-1,0,0", ["utility_2,-1,0,0"]),
    ("iprec_at_recall..10,.25", ["iprec_at_recall_0.10", "iprec_at_recall_0.25"]),
    ("Rprec_mult.5.0", ["Rprec_mult_5.00"]), ("11pt_avg..25,.5", ["11pt_avg_.25,.5"]),
    ("official", ["runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "gm_map", "Rprec", "bpref",
                  "recip_rank", *(f"iprec_at_recall_{i / 10:.2f}" for i in range(11)),
                  *(f"P_{k}" for k in (5, 10, 15, 20, 30, 100, 200, 500, 1000))]),
])
def test_measure_names(text, keys):
    assert [m.key for m in ev.parse_measures([text])] == keys


def test_measure_display_and_depth():
    names = [(m.name, m.depth) for m in ev.parse_measures(["ndcg_cut.10", "map_cut.1000", "MRR@10", "bpref"])]
    assert names == [("nDCG@10", None), ("MAP@1000", None), ("MRR@10", 10), ("bpref", None)]


@pytest.mark.parametrize("text", ["nDCG@0", "foo", "judged", "map.10", "P@x", "P.0", "ndcg.2", "utility.1",
                                  "set_F.x", "relstring.0", "all_trec.5"])
def test_unknown_measures(text):
    with pytest.raises(InputError, match="unknown measure|cutoff|needs a cutoff|parameter"):
        ev.parse_measures([text])


# ---------------------------------------------------------------- the fast run reader


def reference_read(text: str) -> dict | tuple[int, str]:
    """A plain line-by-line reader: the result, or (line, message) of the first error."""
    run: dict[str, dict[str, float]] = {}
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 6:  # fields 7+ are ignored, as trec_eval ignores them
            return number, "expected 6 columns"
        try:
            score = float(parts[4])
        except ValueError:
            return number, "is not a number"
        if not math.isfinite(score):
            return number, "not finite"
        docs = run.setdefault(parts[0], {})
        if parts[2] in docs:
            return number, "appears twice"
        docs[parts[2]] = score
    return run if run else (0, "run is empty")


_token = st.sampled_from(["1", "2", "d1", "d2", "d3", "Q0", "0.5", "-1", "nan", "x"])
_line = st.one_of(
    st.tuples(st.sampled_from(["1", "2", "3"]), st.just("Q0"), st.sampled_from(["a", "b", "c", "d", "e"]),
              st.just("1"), st.sampled_from(["1.5", "2", "-0.25", "1e3", "inf", "abc"]), st.just("t"))
    .map(list),
    st.lists(_token, min_size=0, max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(_line, st.sampled_from([" ", "\t", "  "]), st.sampled_from(["\n", "\r\n"])),
                     max_size=12), chunk=st.sampled_from([7, 16, 40, 1 << 22]))
def test_fast_reader_equals_line_reader(tmp_path_factory, rows, chunk):
    text = "".join(sep.join(tokens) + end for tokens, sep, end in rows)
    path = tmp_path_factory.mktemp("r") / "run.trec"
    path.write_text(text, newline="")
    expected = reference_read(text)
    old = trec_format._CHUNK_BYTES
    trec_format._CHUNK_BYTES = chunk
    try:
        if isinstance(expected, dict):
            assert read_run_scores(str(path)) == expected
            try:
                streamed = dict(trec_format.iter_run_queries(str(path)))
            except trec_format.RunNotGrouped:
                streamed = expected
            assert streamed == expected
        else:
            number, message = expected
            with pytest.raises(InputError, match=message) as err:
                read_run_scores(str(path))
            assert err.value.line == (number or None)
    finally:
        trec_format._CHUNK_BYTES = old


def test_iter_run_queries_refuses_ungrouped_runs(tmp_path):
    path = tmp_path / "r.trec"
    path.write_text("1 Q0 a 1 2 t\n2 Q0 a 1 2 t\n" + "1 Q0 b 2 1 t\n")
    old = trec_format._CHUNK_BYTES
    trec_format._CHUNK_BYTES = 13
    try:
        with pytest.raises(trec_format.RunNotGrouped):
            list(trec_format.iter_run_queries(str(path)))
    finally:
        trec_format._CHUNK_BYTES = old
    assert read_run_scores(str(path)) == {"1": {"a": 2.0, "b": 1.0}, "2": {"a": 2.0}}


# ---------------------------------------------------------------- bad input through the real CLI


def test_cli_default_table_and_tie_warning(cli, tmp_path, dl19):
    path, facts = messy_run(dl19, tmp_path)
    result = cli("eval", path, "--qrels", dl19["qrels"], "-l", "2")
    assert result.returncode == 0, result.stderr
    table = result.stdout.decode().splitlines()
    assert table[0].split() == ["run", "nDCG@10", "nDCG@5", "MAP@1000", "R@100", "Judged@10", "missed"]
    assert table[1].split()[-1] == "3"
    err = result.stderr.decode()
    assert f"{facts['ties']} hits in" in err and "3 of 43 qrels queries are not in the run" in err
    assert "1 run queries are not in the qrels" in err


BAD = [
    ("run", "1 Q0 d1 1 3.5\n", ":1: expected 6 columns"),
    ("run", "", "run is empty"),
    ("run", "1 Q0 d1 1 3.5 t\n1 Q0 d1 2 2.0 t\n", ":2: docid 'd1' appears twice"),
    ("run", "nope Q0 d1 1 3.5 t\n", "none of the run's queries is in the qrels"),
    ("qrels", "1 0 d1 1 x\n", ":1: expected 4 columns"),
    ("measure", "foo", "unknown measure 'foo'; valid: short forms nDCG@k"),
]


@pytest.mark.parametrize("kind,content,message", BAD)
def test_cli_bad_input(cli, tmp_path, kind, content, message):
    run = tmp_path / "run.trec"
    qrels = tmp_path / "qrels.txt"
    run.write_text(content if kind == "run" else "1 Q0 d1 1 3.5 t\n")
    qrels.write_text(content if kind == "qrels" else "1 0 d1 1\n")
    out = tmp_path / "out.txt"
    measure = content if kind == "measure" else "nDCG@10"
    result = cli("eval", run, "--qrels", qrels, "-m", measure, "-o", out)
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".out.txt.*"))


@settings(max_examples=200, deadline=None)
@given(scores=st.lists(st.sampled_from([0.0, 1.0, 1.5, 2.0, -3.0, 7.25]), min_size=1, max_size=30),
       k=st.integers(1, 12))
def test_query_facts_top_k_follows_trec_eval_order(scores, k):
    docs = {f"d{i:02d}": s for i, s in enumerate(scores)}
    ties, tops = providers.query_facts(docs, [k])
    assert ties == len(scores) - len(set(scores))
    hits = trec_format.trec_order(list(docs.items()))
    assert sorted(tops[k]) == sorted(d for d, _ in hits[:k])
    assert providers.top_k(docs, k) == [d for d, _ in hits[:k]]


# ---------------------------------------------------------------- streamed, whole, --jobs


def test_jobs_is_accepted_and_changes_nothing(cli, dl19, tmp_path):
    """--jobs (once a two-process path, now a no-op) still runs and prints the same lines."""
    path, _ = messy_run(dl19, tmp_path)
    args = [path, "--qrels", dl19["qrels"], "-m", "nDCG@10,MAP,MRR@10,Judged@10", "-l", "2", "--format", "trec",
            "--per-query"]
    plain, two = cli("eval", *args), cli("eval", *args, "--jobs", "2")
    assert plain.returncode == two.returncode == 0, two.stderr.decode()
    assert two.stdout == plain.stdout and len(lines_of(plain.stdout.decode())) > 100


@pytest.mark.parametrize("where", ["first", "second", "cut"])
def test_errors_name_the_line_in_streamed_and_whole_reads(cli, dl19, tmp_path, where):
    """A bad line early or late (streamed), or a docid repeated after the query seemed done (the stream
    gives up and the run is read whole): the same file:line either way."""
    lines = dl19["vicuna"].read_text().splitlines(keepends=True)
    middle = len(lines) // 2
    if where == "cut":  # a docid repeated in the middle of the file
        qid, _, docid = lines[middle - 1].split()[:3]
        lines.insert(middle + 1, f"{qid} Q0 {docid} 999 -5.0 x\n")
        number, message = middle + 2, f"docid '{docid}' appears twice"
    else:
        number = 10 if where == "first" else len(lines) - 10
        lines[number - 1] = "1 Q0 broken\n"
        message = "expected 6 columns"
    path = tmp_path / "bad.trec"
    path.write_text("".join(lines))
    result = cli("eval", path, "--qrels", dl19["qrels"])
    assert result.returncode == 2
    assert f"bad.trec:{number}: {message}" in result.stderr.decode()


def test_run_from_a_pipe(cli, dl19, tmp_path):
    import os
    import threading

    fifo = tmp_path / "run.fifo"
    os.mkfifo(fifo)
    lines = dl19["gpt35"].read_text().splitlines(keepends=True)
    shuffled = "".join(random.Random(4).sample(lines, len(lines)))  # not grouped: cannot be streamed
    writer = threading.Thread(target=lambda: fifo.write_text(shuffled))
    writer.start()
    try:
        result = cli("eval", fifo, "--qrels", dl19["qrels"], "-m", "nDCG@10", "--format", "trec")
    finally:
        writer.join(timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert lines_of(result.stdout.decode()) == ["ndcg_cut_10           \tall\t0.6868"]


def test_trec_format_refuses_measures_trec_eval_names_alike(dl19, tmp_path):
    with pytest.raises(InputError, match="cannot show both MRR and MRR@k"):
        ours(tmp_path, [dl19["bm25"]], dl19["qrels"], ["MRR", "MRR@10"], fmt="trec")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("path,message", [("missing.trec", "file not found"), (".", "is a directory")])
def test_unreadable_runs(dl19, tmp_path, path, message):
    with pytest.raises(InputError, match=message):
        ours(tmp_path, [tmp_path / path], dl19["qrels"], ["nDCG@10"])


def reference_qrels(text: str) -> dict | tuple[int, str]:
    """A plain line-by-line qrels reader: the result, or (line, message) of the first error."""
    qrels: dict[str, dict[str, int]] = {}
    layout = None
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
        parts = line.split()
        if number == 1 and parts[:2] == ["query-id", "corpus-id"]:
            layout = 3
        if not parts or (number == 1 and parts[:2] == ["query-id", "corpus-id"]):
            continue
        if len(parts) not in (3, 4):
            return number, "expected 4 columns"
        layout = layout or len(parts)
        if len(parts) != layout:  # one layout per file: 3 columns among 4 is a missing field
            return number, f"{len(parts)} columns in a {layout}-column"
        qid, docid, label = (parts[0], parts[2], parts[3]) if len(parts) == 4 else parts
        try:
            rel = int(label)
        except ValueError:
            return number, "is not an integer"
        if qrels.setdefault(qid, {}).get(docid, rel) != rel:
            return number, "judged twice with different labels"
        qrels[qid][docid] = rel
    return qrels if qrels else (0, "qrels file is empty")


_qrels_line = st.one_of(
    st.tuples(st.sampled_from(["1", "2"]), st.just("0"), st.sampled_from(["a", "b", "c"]),
              st.sampled_from(["0", "1", "2", "-1", "x"])).map(list),
    st.tuples(st.sampled_from(["1", "2"]), st.sampled_from(["a", "b"]), st.sampled_from(["1", "2"])).map(list),
    st.just(["query-id", "corpus-id", "score"]),
    st.lists(st.sampled_from(["1", "a", "0"]), max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(_qrels_line, st.sampled_from([" ", "\t"]), st.sampled_from(["\n", "\r\n"])),
                     max_size=12), chunk=st.sampled_from([5, 12, 30, 1 << 22]))
def test_fast_qrels_reader_equals_line_reader(tmp_path_factory, rows, chunk):
    text = "".join(sep.join(tokens) + end for tokens, sep, end in rows)
    path = tmp_path_factory.mktemp("q") / "qrels.txt"
    path.write_text(text, newline="")
    expected = reference_qrels(text)
    old = trec_format._CHUNK_BYTES
    trec_format._CHUNK_BYTES = chunk
    try:
        if isinstance(expected, dict):
            assert read_qrels(str(path)) == expected
        else:
            number, message = expected
            with pytest.raises(InputError, match=message) as err:
                read_qrels(str(path))
            assert err.value.line == (number or None)
    finally:
        trec_format._CHUNK_BYTES = old


# ---------------------------------------------------------------- runs in memory, evaluate(), provenance


def test_in_memory_runs_equal_files(dl19, tmp_path):
    """The same per-query values and means from {qid: {docid: score}}, from read_run's lists and from the file."""
    path, _ = messy_run(dl19, tmp_path)
    evaluator = ev.Evaluator(read_qrels(str(dl19["qrels"])), ev.parse_measures(["all_trec", "MRR@10", "Judged@10"]),
                             level=2, max_docs=50)
    from_file = evaluator.evaluate_file(str(path))
    for run in (read_run_scores(str(path)), read_run(str(path))):
        in_memory = evaluator.evaluate(run, name="messy", tag="messy")
        assert in_memory.per_query == from_file.per_query and in_memory.means == from_file.means
        assert (in_memory.missed, in_memory.extra_queries, in_memory.tied_hits, in_memory.tag) == (
            from_file.missed, from_file.extra_queries, from_file.tied_hits, from_file.tag)


def test_evaluate_takes_dicts_or_paths(dl19):
    qrels = read_qrels(str(dl19["qrels"]))
    run = read_run_scores(str(dl19["vicuna"]))
    got = ev.evaluate(run, qrels, ["nDCG@10", "ndcg_cut.5", "relstring", "MAP"], level=2)
    assert list(got) == ["nDCG@10", "nDCG@5", "MAP"]  # display names; text measures have no mean
    assert f"{got['nDCG@10']:.4f}" == "0.6682"
    assert ev.evaluate(str(dl19["vicuna"]), dl19["qrels"], ["nDCG@10", "nDCG@5", "MAP"], level=2) == got
    assert ev.evaluate(run, qrels) == {"nDCG@10": got["nDCG@10"]}


@pytest.mark.parametrize("run,qrels,message", [
    ({"1": {"d1": float("nan")}}, {"1": {"d1": 1}}, "score of 'd1' is not finite"),
    ({"1": [("d1", 2.0), ("d1", 1.0)]}, {"1": {"d1": 1}}, "docid 'd1' appears twice"),
    ({"2": {"d1": 1.0}}, {"1": {"d1": 1}}, "none of the run's queries is in the qrels"),
    ({"1": {"d1": 1.0}}, {}, "qrels are empty"),
    ({"1": {"d1": "x"}}, {"1": {"d1": 1}}, "score of 'd1' is not a number"),
    ({"1": {"d1": 1.0}}, {"1": {"d1": 1.5}}, "label of 'd1' is not an integer"),
])
def test_evaluate_refuses_bad_input(run, qrels, message):
    with pytest.raises(InputError, match=message):
        ev.evaluate(run, qrels, ["nDCG@10"])


def test_comparisons_leave_results_alone(dl19):
    evaluator = ev.Evaluator(read_qrels(str(dl19["qrels"])), ev.parse_measures(["nDCG@10", "relstring"]))
    base, run = (evaluator.evaluate_file(str(dl19[name])) for name in ("bm25", "vicuna"))
    means = dict(run.means)
    got = ev.compare(run, base, evaluator.qids, permutations=200)
    assert list(got) == [ev.Measure("ndcg_cut", 10)] and run.means == means
    assert got[ev.Measure("ndcg_cut", 10)].delta == pytest.approx(means[ev.Measure("ndcg_cut", 10)] - 0.5058, abs=1e-4)


def test_json_starts_with_provenance(dl19, tmp_path):
    import hashlib

    data = json.loads(ours(tmp_path, [dl19["vicuna"]], dl19["qrels"], ["nDCG@10"], baseline=str(dl19["bm25"]),
                           fmt="json"))
    assert data["schema"] == "rearank.eval/1" and list(data)[0] == "schema"
    assert data["inputs"]["qrels"] == {"path": str(dl19["qrels"]),
                                       "sha256": hashlib.sha256(dl19["qrels"].read_bytes()).hexdigest()}
    assert [data["inputs"][key]["path"] for key in ("run1", "run2")] == [str(dl19["bm25"]), str(dl19["vicuna"])]
    assert "pytrec-eval-terrier" in data["versions"] and data["rearank_version"] == data["versions"]["rearank-cli"]
    assert data["qrels"] == str(dl19["qrels"]) and data["runs"][1]["vs_baseline"]["nDCG@10"]["win"] > 0


def test_a_table_of_many_measures_has_a_row_per_measure(cli):
    """`-m all_trec` (over a hundred measures) is a row per measure, a column per run, with the values the
    JSON layout holds; up to 8 measures keep a row per run."""
    from rearank_cli.evaluation.render import format_value

    runs = ["sample_runs/dl19-bm25-top100.trec", "sample_runs/dl19-rankvicuna-7b.trec"]
    args = [*runs, "--qrels", "sample_runs/dl19-qrels.txt", "-m", "all_trec", "--baseline", runs[0]]
    table = cli("eval", *args)
    assert table.returncode == 0, table.stderr.decode()
    header, *rows = table.stdout.decode().split("\n\n", 1)[0].splitlines()
    assert header.split() == ["measure", runs[0], "(baseline)", runs[1]]
    assert max(len(line) for line in [header, *rows]) < 120
    report = json.loads(cli("eval", *args, "--format", "json").stdout)
    measures = {m.name: m for m in ev.parse_measures(["all_trec"]) if not m.text}
    assert [row.split()[0] for row in rows] == [*measures, "missed"]
    for row in rows[:-1]:
        name, base, reranked = row.split()
        values = [run["means"][name] for run in report["runs"]]
        assert [base, reranked.rstrip("*+")] == [format_value(measures[name], value) for value in values]
    assert rows[-1].split() == ["missed", "0", "0"]
    eight = [f"P@{k}" for k in range(1, 9)]
    few = cli("eval", *runs, "--qrels", "sample_runs/dl19-qrels.txt", *(f"-m{m}" for m in eight)).stdout.decode()
    assert few.splitlines()[0].split() == ["run", *eight, "missed"]


def test_trec_covid_bm25_top100_reproduces_published(data):
    """rank_llm's BEIR TREC-COVID BM25 top-100 run (tests/data) scores Anserini's published flat BM25."""
    folder = data / "beir-trec-covid"
    run, qrels = folder / "trec_results_covid.txt.gz", folder / "qrels.beir-v1.0.0-trec-covid.test.txt.gz"
    means = ev.evaluate(str(run), str(qrels), ["nDCG@10", "R@100"])
    assert {name: round(value, 4) for name, value in means.items()} == {"nDCG@10": 0.5947, "R@100": 0.1091}
