"""Malformed input through the real CLI: one-line message naming file and line, exit 2, no output left."""

from __future__ import annotations

import pytest

DL19 = "sample_runs/dl19-bm25-top100.trec"
QRELS = "sample_runs/dl19-qrels.txt"
TOPICS = "sample_runs/dl19-topics.tsv"
CANDS = "sample_runs/dl19-bm25-top100.candidates.json.gz"
GOOD_RUN = "19335 Q0 d1 1 3.5 t\n19335 Q0 d2 2 2.5 t\n"

BAD_RUNS = {
    "columns": ("19335 Q0 d1 1 3.5\n", ":1: expected 6 columns"),
    "score": ("19335 Q0 d1 1 3.5 t\n19335 Q0 d2 2 high t\n", ":2: score 'high' is not a number"),
    "duplicate": ("19335 Q0 d1 1 3.5 t\n19335 Q0 d1 2 2.5 t\n", ":2: docid 'd1' appears twice"),
    "nan": ("19335 Q0 d1 1 nan t\n", ":1: score 'nan' is not finite"),
}


def check_failure(result, fragment: str, out) -> None:
    """Exit 2, a single error line that contains `fragment`, and no output file (nor temp file) left."""
    err = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2, result.stderr.decode()
    assert any(fragment in line for line in err), err
    assert sum(line.startswith("rearank: error:") for line in err) == 1
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


@pytest.mark.parametrize("case", sorted(BAD_RUNS))
def test_bad_run_via_eval(cli, tmp_path, case):
    text, fragment = BAD_RUNS[case]
    bad = tmp_path / "bad.trec"
    bad.write_text(text)
    out = tmp_path / "out.txt"
    result = cli("eval", bad, "--qrels", QRELS, "-o", out)
    check_failure(result, f"bad.trec{fragment}", out)


@pytest.mark.parametrize(
    "text,fragment",
    [("19335 0\n", "bad.qrels:1: expected 4 columns"), ("19335 0 d1 yes\n", "bad.qrels:1: relevance 'yes'")],
)
def test_bad_qrels_via_eval(cli, tmp_path, text, fragment):
    bad = tmp_path / "bad.qrels"
    bad.write_text(text)
    out = tmp_path / "out.txt"
    check_failure(cli("eval", DL19, "--qrels", bad, "-o", out), fragment, out)


def test_bad_topics_via_augment(cli, tmp_path):
    run = tmp_path / "run.trec"
    run.write_text(GOOD_RUN)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "d1", "contents": "a"}\n{"id": "d2", "contents": "b"}\n')
    topics = tmp_path / "topics.tsv"
    topics.write_text("19335\tok\n19336 no tab here\n")
    out = tmp_path / "train.jsonl"
    result = cli("augment", run, "--qrels", QRELS, "--topics", topics, "--corpus", corpus, "-o", out)
    check_failure(result, "topics.tsv:2: expected 'qid<TAB>query'", out)


@pytest.mark.parametrize(
    "text,fragment",
    [
        ('{"id": "d1", "contents": "a"}\n{"id": "d2"}\n', "corpus.jsonl:2: document 'd2' has no text"),
        ('{"id": "d1", "contents": "a"}\n{"id": "d1", "contents": "b"}\n', "corpus.jsonl:2: duplicate document id"),
        ('{"id": "d1", "contents": "a"}\n{oops\n', "corpus.jsonl:2: invalid JSON"),
    ],
)
def test_bad_corpus_via_augment(cli, tmp_path, text, fragment):
    run = tmp_path / "run.trec"
    run.write_text(GOOD_RUN)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(text)
    out = tmp_path / "train.jsonl"
    result = cli("augment", run, "--qrels", QRELS, "--topics", TOPICS, "--corpus", corpus, "-o", out)
    check_failure(result, fragment, out)


def test_bad_candidates_via_augment(cli, tmp_path):
    cands = tmp_path / "cands.json"
    cands.write_text('[{"query": "q", "hits": [{"qid": 19335, "docid": "d1", "score": 1.0}]}]')
    out = tmp_path / "train.jsonl"
    result = cli("augment", DL19, "--qrels", QRELS, "--candidates", cands, "-o", out)
    check_failure(result, "cands.json: entry 0 hit 0: missing field(s) content", out)


@pytest.mark.parametrize("given, fragment", [
    (["--topics", TOPICS], "--topics given without --corpus"),
    (["--corpus", "sample_runs/no-corpus.jsonl"], "--corpus given without --topics"),
    ([], "give --topics and --corpus, or --candidates"),
])
def test_rerank_names_the_missing_text_input(cli, tmp_path, given, fragment):
    out = tmp_path / "out.trec"
    check_failure(cli("rerank", DL19, *given, "-o", out), fragment, out)


def test_a_model_missing_offline_points_to_the_demo_model(cli, tmp_path):
    from rearank_cli.model_check import DEMO_MODEL

    out = tmp_path / "out.trec"
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    result = cli("rerank", DL19, "--candidates", CANDS, "--model", "org/not-downloaded", "-o", out, env=env)
    check_failure(result, "HF_HUB_OFFLINE is set", out)
    [line] = result.stderr.decode().splitlines()
    assert "demo model" in line and DEMO_MODEL[1] in line and "--backend hf" in line, line


def test_m_for_model_still_works_with_a_deprecation_line(cli, tmp_path):
    """`-m` is `--measure` (eval, report); in rerank it still means --model, with one line saying so."""
    out = tmp_path / "out.trec"
    result = cli("rerank", DL19, "--candidates", CANDS, "-m", tmp_path / "no-model", "-o", out)
    check_failure(result, "no-model: no such file or folder", out)
    err = result.stderr.decode().splitlines()
    assert err[0] == "rearank: -m for --model is deprecated; use --model", err
    result = cli("rerank", DL19, "--candidates", CANDS, "-m", "a", "--model", "b", "-o", out)
    check_failure(result, "-m and --model both given: give --model once", out)


def test_missing_input_file(cli, tmp_path):
    out = tmp_path / "out.txt"
    check_failure(cli("eval", tmp_path / "nope.trec", "--qrels", QRELS, "-o", out), "nope.trec: file not found", out)


def test_debug_shows_traceback(cli, tmp_path):
    bad = tmp_path / "bad.trec"
    bad.write_text("x\n")
    result = cli("--debug", "eval", bad, "--qrels", QRELS)
    assert result.returncode != 0
    assert "Traceback" in result.stderr.decode()
