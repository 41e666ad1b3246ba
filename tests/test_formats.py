"""Readers and writers: round trips on every sample file, and every malformed-input error."""

from __future__ import annotations

import gzip
import io
import json
import os
import sys

import pytest

from rearank_cli.errors import InputError
from rearank_cli.formats import (
    atomic_output,
    doc_text,
    iter_corpus,
    load_texts,
    read_candidates,
    read_first_stage,
    read_qrels,
    read_run,
    read_topics,
    write_candidates,
    write_corpus,
    write_qrels,
    write_run,
    write_topics,
)
from rearank_cli.formats.trec import run_from_lists

RUNS = ["dl19-bm25-top100.trec", "dl19-rankvicuna-7b.trec", "dl19-rankgpt-gpt35.trec"]


@pytest.mark.parametrize("name", RUNS)
def test_run_round_trip(samples, tmp_path, name):
    run = read_run(str(samples / name))
    out = tmp_path / "out.trec"
    write_run(str(out), run, tag="x")
    assert read_run(str(out)) == run
    gz = tmp_path / "out.trec.gz"
    write_run(str(gz), run, tag="x")
    assert gzip.open(gz).read(2)
    assert read_run(str(gz)) == run


def test_dl19_run_shape(samples):
    run = read_run(str(samples / "dl19-bm25-top100.trec"))
    assert len(run) == 43
    assert all(len(hits) == 100 for hits in run.values())
    for hits in run.values():
        scores = [score for _, score in hits]
        assert scores == sorted(scores, reverse=True)


def test_qrels_topics_round_trip(samples, tmp_path):
    for name in ["dl19-qrels.txt", "scifact-slice-qrels.txt"]:
        qrels = read_qrels(str(samples / name))
        write_qrels(str(tmp_path / "q.txt"), qrels)
        assert read_qrels(str(tmp_path / "q.txt")) == qrels
    for name in ["dl19-topics.tsv", "scifact-slice-topics.tsv"]:
        topics = read_topics(str(samples / name))
        write_topics(str(tmp_path / "t.tsv"), topics)
        assert read_topics(str(tmp_path / "t.tsv")) == topics
    assert len(read_qrels(str(samples / "dl19-qrels.txt"))) == 43
    assert read_topics(str(samples / "dl19-topics.tsv"))["19335"] == "anthropological definition of environment"


def test_corpus_round_trip_and_titles(samples, tmp_path):
    docs = dict(iter_corpus(str(samples / "scifact-slice-corpus.jsonl.gz")))
    assert len(docs) == 1002
    assert all(text.startswith("Title: ") and " Content: " in text for text in docs.values())
    write_corpus(str(tmp_path / "c.jsonl.gz"), docs)
    assert dict(iter_corpus(str(tmp_path / "c.jsonl.gz"))) == docs
    wanted = set(list(docs)[:5])
    assert load_texts(str(samples / "scifact-slice-corpus.jsonl.gz"), wanted) == {d: docs[d] for d in wanted}


def test_doc_text_rules():
    assert doc_text("T", "body") == "Title: T Content: body"
    assert doc_text("", "body") == "body"
    assert doc_text(None, "body") == "body"


def test_candidates_round_trip(samples, tmp_path):
    cands = read_candidates(str(samples / "dl19-bm25-top100.candidates.json.gz"))
    assert len(cands.run) == 43 and len(cands.topics) == 43
    assert cands.run == read_run(str(samples / "dl19-bm25-top100.trec"))
    assert cands.topics == read_topics(str(samples / "dl19-topics.tsv"))
    write_candidates(str(tmp_path / "c.json"), cands)
    again = read_candidates(str(tmp_path / "c.json"))
    assert (again.run, again.topics, again.texts) == (cands.run, cands.topics, cands.texts)


def test_run_ties_follow_trec_eval(tmp_path):
    path = tmp_path / "ties.trec"
    path.write_text("q Q0 a 1 1.0 t\nq Q0 c 2 1.0 t\nq Q0 b 3 2.0 t\n")
    assert [d for d, _ in read_run(str(path))["q"]] == ["b", "c", "a"]


def test_first_stage_ties_keep_file_order(tmp_path):
    """A reranker's input (spec section 2): score descending, equal scores in file (or list) order."""
    path = tmp_path / "ties.trec"
    path.write_text("q Q0 c 1 1.0 t\nr Q0 x 1 3.0 t\nq Q0 a 2 1.0 t\nq Q0 d 3 1.0 t\nq Q0 b 4 2.0 t\n")
    assert {q: [d for d, _ in hits] for q, hits in read_first_stage(str(path)).items()} == {
        "q": ["b", "c", "a", "d"], "r": ["x"]}
    assert [d for d, _ in read_run(str(path))["q"]] == ["b", "d", "c", "a"]  # trec_eval's rule, for eval
    hits = [{"content": "t", "qid": "q", "docid": d, "rank": 1, "score": s} for d, s in
            [("c", 1.0), ("a", 1.0), ("b", 2.0), ("d", 1.0)]]
    (tmp_path / "c.json").write_text(json.dumps([{"query": "q", "hits": hits}]))
    assert [d for d, _ in read_candidates(str(tmp_path / "c.json")).run["q"]] == ["b", "c", "a", "d"]
    with pytest.raises(InputError, match="run is empty"):
        (tmp_path / "empty.trec").write_text("")
        read_first_stage(str(tmp_path / "empty.trec"))


def test_run_from_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"1 Q0 d1 1 3.5 t\n")))
    assert read_run("-") == {"1": [("d1", 3.5)]}


def test_run_from_gzip_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(gzip.compress(b"1 Q0 d1 1 3.5 t\n"))))
    assert read_run("-") == {"1": [("d1", 3.5)]}


def test_run_from_lists_strictly_decreasing():
    run = run_from_lists([("q", ["a", "b", "c"])])
    assert run == {"q": [("a", 3.0), ("b", 2.0), ("c", 1.0)]}


BAD_RUNS = [
    ("1 Q0 d1 1 3.5\n", "line 1", "expected 6 columns"),
    ("1 Q0 d1 1 3.5 t\n1 Q0 d2 2 abc t\n", ":2:", "is not a number"),
    ("1 Q0 d1 1 3.5 t\n1 Q0 d1 2 2.0 t\n", ":2:", "appears twice"),
    ("1 Q0 d1 1 nan t\n", ":1:", "not finite"),
    ("1 Q0 d1 1 inf t\n", ":1:", "not finite"),
    ("", "", "run is empty"),
]


@pytest.mark.parametrize("text,where,message", BAD_RUNS)
def test_bad_run(tmp_path, text, where, message):
    path = tmp_path / "bad.trec"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_run(str(path))
    shown = str(err.value).replace("line 1", ":1:")
    assert message in shown and str(path) in shown
    assert where.replace("line 1", ":1:") in shown


@pytest.mark.parametrize(
    "text,message",
    [("1 0\n", "expected 4 columns"), ("1 0 d1 x\n", "not an integer"), ("", "empty")],
)
def test_bad_qrels(tmp_path, text, message):
    path = tmp_path / "bad.qrels"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_qrels(str(path))


def test_beir_qrels_tsv(data):
    qrels = read_qrels(str(data / "beir-scifact/qrels-test.tsv"))
    trec = read_qrels(str(data / "beir-scifact/qrels.beir-v1.0.0-scifact.test.txt"))
    assert qrels == trec


@pytest.mark.parametrize(
    "text,message",
    [
        ('{"id": "a"}\n', "has no text"),
        ('{"contents": "x"}\n', "has no id"),
        ('{"id": "a", "contents": "x"}\n{"id": "a", "contents": "y"}\n', "duplicate document id"),
        ("not json\n", "invalid JSON"),
        ("", "corpus is empty"),
    ],
)
def test_bad_corpus(tmp_path, text, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        list(iter_corpus(str(path)))
    if text:
        assert f"{path}:" in str(err.value)


def test_topics_formats(tmp_path, caplog):
    tsv = tmp_path / "t.tsv"
    tsv.write_text("1\tfirst query\n2\t \n3\tthird\n")
    assert read_topics(str(tsv)) == {"1": "first query", "3": "third"}
    assert "empty query" in caplog.text
    jsonl = tmp_path / "queries.jsonl"
    jsonl.write_text('{"_id": "7", "text": "a claim", "metadata": {}}\n')
    assert read_topics(str(jsonl)) == {"7": "a claim"}
    dup = tmp_path / "dup.tsv"
    dup.write_text("1\ta\n1\tb\n")
    with pytest.raises(InputError, match="appears twice"):
        read_topics(str(dup))
    notab = tmp_path / "notab.tsv"
    notab.write_text("1 a\n")
    with pytest.raises(InputError, match="qid<TAB>query"):
        read_topics(str(notab))


def test_bad_candidates(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('[{"query": "q", "hits": [{"qid": 1, "docid": "a", "score": 1}]}]')
    with pytest.raises(InputError, match="missing field"):
        read_candidates(str(path))
    path.write_text("{")
    with pytest.raises(InputError, match="invalid JSON"):
        read_candidates(str(path))


@pytest.mark.parametrize("text,message", [
    ('[{"query": "q"}]', "entry 0: expected fields 'query' and 'hits' .RankGPT. or 'query' and 'candidates'"),
    ('[{"query": "q", "candidates": []}]', "entry 0: 'query' must be an object with 'text' and 'qid'"),
    ('[{"query": {"text": "q", "qid": 1}, "candidates": {}}]', "entry 0: 'candidates' must be a list"),
    ('[{"query": {"text": "q", "qid": 1}, "candidates": [{"docid": "a", "doc": {"text": "x"}}]}]',
     "entry 0 candidate 0: missing field.s. score"),
    ('[{"query": {"text": "q", "qid": 1}, "candidates": [{"docid": "a", "score": 1, "doc": {"url": "x"}}]}]',
     "entry 0 candidate 0: 'doc' has no text"),
    ('{"query": {"text": "q", "qid": 1}, "candidates": []}\n[1]\n', "invalid JSON Lines .expected an object"),
    ("[]", "expected a JSON list .or JSON Lines. of candidate entries"),
    ("", "expected a JSON list .or JSON Lines. of candidate entries"),
])
def test_bad_rank_llm_candidates(tmp_path, text, message):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_candidates(str(path))


def test_rank_llm_candidates_read_like_rankgpt(samples, tmp_path):
    """The DL19 candidates rewritten as rank_llm `Request` JSON Lines (text under `doc`, no `rank`) read the
    same; a `title` gives `Title: ... Content: ...`, a doc that is a plain string is its text."""
    rankgpt = read_candidates(str(samples / "dl19-bm25-top100.candidates.json.gz"))
    lines = []
    for qid, hits in rankgpt.run.items():
        candidates = [{"docid": docid, "score": score, "doc": {"segment": rankgpt.texts[docid]}}
                      for docid, score in hits]
        lines.append(json.dumps({"query": {"text": rankgpt.topics[qid], "qid": int(qid)}, "candidates": candidates}))
    path = tmp_path / "requests.jsonl"
    path.write_text("\n".join(lines) + "\n")
    again = read_candidates(str(path))
    assert (again.run, again.topics, again.texts) == (rankgpt.run, rankgpt.topics, rankgpt.texts)
    path.write_text(json.dumps([{"query": {"text": "q", "qid": "1"}, "candidates": [
        {"docid": "a", "score": 2, "doc": {"title": "T", "body": "b", "text": "t"}},
        {"docid": "b", "score": 1, "doc": "plain"}]}]))
    assert read_candidates(str(path)).texts == {"a": "Title: T Content: t", "b": "plain"}


def test_missing_file():
    with pytest.raises(InputError, match="file not found"):
        read_run("/nonexistent/run.trec")


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.trec"
    with pytest.raises(RuntimeError), atomic_output(str(target)) as out:
        out.write("partial\n")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(str(target)) as out:
        out.write("done\n")
    assert target.read_text() == "done\n"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # as open() would make it, not mkstemp's 0600
    assert list(tmp_path.iterdir()) == [target]
