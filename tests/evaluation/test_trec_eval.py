"""`rearank eval --format trec` as a drop-in for trec_eval 9.0.x: the same lines as the C trec_eval that
pyserini bundles, for every measure, trec_eval's parameter syntax, -q, -l, -M, with and without -c, and its
input rules.

The reference is the binary itself, taken out of pyserini's Anserini jar (the jar's `trec_eval` Java class
extracts and runs the same file), called without a JVM.
"""

from __future__ import annotations

import gzip
import platform
import random
import subprocess
import zipfile
from pathlib import Path

import orjson
import pytest

from rearank_cli import evaluation as ev
from rearank_cli.errors import InputError
from rearank_cli.evaluation import measures
from rearank_cli.formats.exclude import read_exclusions
from rearank_cli.formats.trec import read_qrels, read_run
from rearank_cli.jobs.eval import run_eval

BINARIES = {("Linux", "x86_64"): "trec_eval-linux-amd64", ("Darwin", "arm64"): "trec_eval-macosx-aarch64",
            ("Darwin", "x86_64"): "trec_eval-macosx-x86_64"}
PARAMETERIZED = [
    "P.5,7,3", "recall.20,2000", "ndcg_cut.10,20,23.4", "success.2,5,20", "iprec_at_recall..10,.20,.25",
    "Rprec_mult.5.0,0.2,0.35", "utility.2,-1,0,0", "11pt_avg..25,.5,.75", "ndcg.1=3,2=9,4=4.5",
    "ndcg_rel.1=2,3=5", "Rndcg.0=1,1=2,3=10", "G.1=2", "relative_P.3,50", "map_cut.7", "set_F.0.5",
    "relstring.5", "num_q", "num_ret", "num_rel", "num_rel_ret", "num_nonrel_judged_ret", "gm_map", "gm_bpref",
    "infAP", "binG", "set_P", "set_relative_P", "set_recall", "set_map", "set",
]


@pytest.fixture(scope="session")
def trec_eval_binary(tmp_path_factory) -> Path:
    """The C trec_eval (9.0.x) from pyserini's Anserini jar, extracted once."""
    from rearank_cli.lucene import java as jvm

    name = BINARIES.get((platform.system(), platform.machine()))
    if name is None:
        pytest.skip(f"pyserini bundles no trec_eval binary for {platform.system()} {platform.machine()}")
    folder = tmp_path_factory.mktemp("trec_eval")
    with zipfile.ZipFile(jvm.anserini_jar()) as jar:
        path = Path(jar.extract(f"trec_eval/{name}", folder))
    path.chmod(0o755)
    assert "9.0" in subprocess.run([path, "-v"], capture_output=True, text=True).stderr
    return path


@pytest.fixture(scope="session")
def trec_eval(trec_eval_binary):
    """Run the C trec_eval: its stdout lines (a failed run fails the test)."""
    def run(*args) -> list[str]:
        result = subprocess.run([trec_eval_binary, *map(str, args)], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    return run


def trec_args(args: list[str]) -> dict:
    """trec_eval flags -> run_eval keyword arguments (measures in a list)."""
    options: dict = {"measure_names": [], "fmt": "trec", "complete": False}
    flags = iter(args)
    for flag in flags:
        if flag == "-q":
            options["per_query"] = True
        elif flag == "-l":
            options["level"] = int(next(flags))
        elif flag == "-M":
            options["max_docs"] = int(next(flags))
        elif flag == "-m":
            options["measure_names"].append(next(flags))
        else:
            assert flag == "-c", flag
            options["complete"] = True
    return options


def ours(tmp_path: Path, run: Path, qrels: Path, args: list[str]) -> list[str]:
    """`rearank eval RUN --qrels QRELS --format trec` with trec_eval's flags, in this process."""
    options = trec_args(args)
    out = tmp_path / f"ours-{random.random()}.txt"
    run_eval([str(run)], str(qrels), options.pop("measure_names"), output=str(out), **options)
    return out.read_text().splitlines()


def same_as_trec_eval(trec_eval, tmp_path, run, qrels, *args: str) -> list[str]:
    """Assert rearank's lines equal trec_eval's for these flags, with -c and without; returns -c's."""
    for flags in (["-c", *args], list(args)):
        expected = trec_eval(*flags, qrels, run)
        got = ours(tmp_path, run, qrels, flags)
        assert got == expected, (flags, next((e, g) for e, g in zip(expected + [""], got + [""], strict=False)
                                             if e != g))
    return trec_eval("-c", *args, qrels, run)


# ---------------------------------------------------------------- runs


@pytest.fixture(scope="session")
def dl19(samples) -> dict[str, Path]:
    return {"qrels": samples / "dl19-qrels.txt", "bm25": samples / "dl19-bm25-top100.trec"}


@pytest.fixture(scope="session")
def extra_fields_run(dl19, tmp_path_factory) -> Path:
    """The BM25 run with junk in fields 7+ and a tag per line (trec_eval prints the last line's)."""
    lines = dl19["bm25"].read_text().splitlines()
    path = tmp_path_factory.mktemp("extra") / "extra.trec"
    path.write_text("".join(f"{line[:line.rindex(' ')]} tag{i % 7}{' junk 1.5 x' * (i % 3)}\n"
                            for i, line in enumerate(lines)))
    return path


@pytest.fixture(scope="session")
def missing_run(dl19, tmp_path_factory) -> Path:
    """The BM25 run without 5 qrels queries, plus a query the qrels lack; lines shuffled within queries."""
    run = read_run(str(dl19["bm25"]))
    rng = random.Random(7)
    qids = sorted(run)
    keep = [q for q in qids if q not in set(rng.sample(qids, 5))]
    lines = []
    for qid in [*keep, "999999"]:
        hits = run.get(qid, [("D1", 1.0), ("D2", 0.5)])
        lines += rng.sample([f"{qid} Q0 {d} {r} {s} miss\n" for r, (d, s) in enumerate(hits, 1)], len(hits))
    path = tmp_path_factory.mktemp("missing") / "missing.trec"
    path.write_text("".join(lines))
    return path


# ---------------------------------------------------------------- the same lines as trec_eval


@pytest.mark.parametrize("level", ["1", "2"])
def test_all_trec_and_official_on_dl19_bm25(trec_eval, dl19, tmp_path, level):
    lines = same_as_trec_eval(trec_eval, tmp_path, dl19["bm25"], dl19["qrels"], "-q", "-l", level, "-m", "all_trec")
    assert len(lines) > 43 * 90 and lines[-1].split()[:2] == ["num_nonrel_judged_ret", "all"]
    official = same_as_trec_eval(trec_eval, tmp_path, dl19["bm25"], dl19["qrels"], "-l", level, "-m", "official")
    assert official == trec_eval("-c", "-l", level, dl19["qrels"], dl19["bm25"])  # official = no -m
    assert [line.split()[0] for line in official[:5]] == ["runid", "num_q", "num_ret", "num_rel", "num_rel_ret"]


def test_run_with_extra_fields(trec_eval, dl19, extra_fields_run, tmp_path):
    lines = same_as_trec_eval(trec_eval, tmp_path, extra_fields_run, dl19["qrels"], "-q", "-m", "all_trec")
    assert [line.split() for line in lines if line.startswith("runid")] == [["runid", "all", f"tag{4299 % 7}"]]
    same_as_trec_eval(trec_eval, tmp_path, extra_fields_run, dl19["qrels"], "-m", "official")


def test_run_missing_queries(trec_eval, dl19, missing_run, tmp_path):
    for level in ("1", "2"):
        lines = same_as_trec_eval(trec_eval, tmp_path, missing_run, dl19["qrels"], "-q", "-l", level,
                                  "-m", "all_trec")
        assert sum(line.startswith("map ") for line in lines) == 43 - 5 + 1
    same_as_trec_eval(trec_eval, tmp_path, missing_run, dl19["qrels"], "-m", "official")


def test_qrels_queries_without_a_relevant_doc(trec_eval, dl19, tmp_path, capsys):
    """Queries judged all non-relevant: trec_eval scores them (every measure 0) and counts them in the
    means, whether the run answers them or not; rearank warns and does the same."""
    qrels = tmp_path / "qrels.txt"
    qrels.write_text(Path(dl19["qrels"]).read_text() + "zz1 0 7067032 0\nzz1 0 8182161 0\nzz2 0 1234 0\n")
    run = tmp_path / "run.trec"
    lines = Path(dl19["bm25"]).read_text().splitlines(keepends=True)
    first = lines[0].split()[0]
    copied = [line.replace(first, "zz1", 1) for line in lines if line.split()[0] == first]  # zz1 answered
    run.write_text("".join(lines + copied))
    for level in ("1", "2"):
        got = same_as_trec_eval(trec_eval, tmp_path, run, qrels, "-q", "-l", level, "-m", "all_trec")
        assert ["num_q", "all", "45"] in [line.split() for line in got]
    same_as_trec_eval(trec_eval, tmp_path, run, qrels, "-m", "official")
    assert ev.evaluate(str(run), str(qrels), ["nDCG@10"])["nDCG@10"] > 0


@pytest.mark.parametrize("measure", PARAMETERIZED)
def test_each_family_and_parameter_syntax(trec_eval, dl19, missing_run, tmp_path, measure):
    lines = same_as_trec_eval(trec_eval, tmp_path, missing_run, dl19["qrels"], "-q", "-l", "2", "-m", measure)
    assert lines


@pytest.mark.slow
def test_max_docs_on_a_1000_deep_scifact_run(trec_eval, scifact_bm25, tmp_path):
    run, qrels = scifact_bm25["run"], scifact_bm25["qrels"]
    limited = same_as_trec_eval(trec_eval, tmp_path, run, qrels, "-q", "-M", "100", "-m", "all_trec")
    depth = sum(min(100, len(hits)) for hits in read_run(str(run)).values())
    assert f"num_ret               \tall\t{depth}" in limited and max(map(len, read_run(str(run)).values())) == 1000
    same_as_trec_eval(trec_eval, tmp_path, run, qrels, "-M", "100", "-m", "official")
    assert limited != trec_eval("-c", "-q", "-m", "all_trec", qrels, run)
    # the BEIR TSV qrels (3 columns, header) give the same lines as the TREC ones
    assert ours(tmp_path, run, scifact_bm25["beir_qrels"], ["-q", "-M", "100", "-m", "all_trec"]) == limited


def test_the_same_command_line_through_the_cli(cli, trec_eval, dl19, missing_run):
    args = ["-c", "-q", "-l", "2", "-M", "50", "-m", "ndcg_cut.10,20", "-m", "P.5,7,3", "-m", "ndcg.1=3,2=9,4=4.5"]
    result = cli("eval", missing_run, "--qrels", dl19["qrels"], "--format", "trec", *args)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines() == trec_eval(*args, dl19["qrels"], missing_run)


def test_evaluate_in_memory_equals_trec_eval(trec_eval, dl19, missing_run):
    """`evaluate()` on dicts (the public API) gives trec_eval -c's summary numbers for every numeric measure."""
    from rearank_cli.evaluation.render import format_value

    expected = [line for line in trec_eval("-c", "-l", "2", "-m", "all_trec", dl19["qrels"], missing_run)
                if not line.startswith("runid")]
    chosen = ev.parse_measures(["all_trec"])
    got = ev.evaluate(read_run(str(missing_run)), read_qrels(str(dl19["qrels"])), chosen, level=2)
    assert len(got) == len(expected) > 90
    ordered = measures.trec_measures([m for m in chosen if not m.text])
    assert [f"{m.key:<22}\tall\t{format_value(m, got[m.name])}" for m in ordered] == expected


def test_nicknames_follow_pytrec_eval():
    import pytrec_eval

    for name, families in measures.NICKNAMES.items():
        assert set(families) == set(pytrec_eval.supported_nicknames[name]), name
    assert set(measures.TREC_ORDER) == set(pytrec_eval.supported_measures)


def test_every_family_once_in_a_kind():
    kinds = [set(measures.PLAIN), set(measures.CUTOFF), set(measures.POINTS), set(measures.SINGLE)]
    assert set().union(*kinds) == set(measures.TREC_ORDER)
    assert sum(map(len, kinds)) == len(measures.TREC_ORDER)


# ---------------------------------------------------------------- --exclude (BRIGHT's excluded_ids)


BRIGHT = "bright"


def test_exclusion_layouts_agree_on_bright_leetcode(data):
    pairs = read_exclusions(str(data / BRIGHT / "exclude.bright-leetcode.txt.gz"))
    assert pairs == read_exclusions(str(data / BRIGHT / "topics.bright-leetcode-original.jsonl.gz"))
    assert len(pairs) == 142 and sum(map(len, pairs.values())) == 33485
    pony = read_exclusions(str(data / BRIGHT / "topics.bright-pony-original.jsonl.gz"))
    assert len(pony) == 112 and not any(pony.values())  # excluded_ids ["N/A"]: nothing


def test_exclude_equals_trec_eval_on_the_run_without_the_pairs(cli, trec_eval, data, tmp_path):
    """A leetcode run holding the gold docs and the excluded ones on top: --exclude = dropping those lines."""
    qrels = data / BRIGHT / "qrels.bright-leetcode.txt"
    examples = data / BRIGHT / "topics.bright-leetcode-original.jsonl.gz"
    pairs = read_exclusions(str(examples))
    rng = random.Random(3)
    lines, kept = [], []
    for qid, judged in read_qrels(str(qrels)).items():
        docs = sorted(pairs.get(qid, set()))[:30] + sorted(judged) + [f"leetcode/other_{i}.txt" for i in range(20)]
        for rank, docid in enumerate(rng.sample(docs, len(docs)), 1):
            line = f"{qid} Q0 {docid} {rank} {100 - rank + (50 if docid in pairs.get(qid, ()) else 0)} t\n"
            lines.append(line)
            kept += [] if docid in pairs.get(qid, ()) else [line]
    run, filtered = tmp_path / "run.trec", tmp_path / "filtered.trec"
    run.write_text("".join(lines))
    filtered.write_text("".join(kept))
    args = ["-c", "-q", "-m", "all_trec"]
    for source in (examples, data / BRIGHT / "exclude.bright-leetcode.txt.gz"):
        result = cli("eval", run, "--qrels", qrels, "--format", "trec", "--exclude", source, *args)
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.decode().splitlines() == trec_eval(*args, qrels, filtered)
        assert f"{len(lines) - len(kept)} hits dropped by --exclude" in result.stderr.decode()
    assert len(lines) - len(kept) > 1000


@pytest.mark.parametrize("text,message", [
    ("1 d1\n1 d2 x\n", ":2: expected 2 columns"),
    ('{"id": "1"}\n', ":1: a BRIGHT example needs the fields"),
    ('{"id": "1", "excluded_ids": "[oops"}\n', "is not a list"),
    ("", "exclusion file is empty"),
])
def test_bad_exclusion_files(tmp_path, text, message):
    path = tmp_path / "ex.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_exclusions(str(path))


def test_exclusions_from_string_lists_and_gzip(tmp_path):
    rows = [{"id": 1, "excluded_ids": "['a', 'b']"}, {"id": "2", "excluded_ids": ["N/A"]},
            {"id": "3", "excluded_ids": ["c"]}]
    path = tmp_path / "ex.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in rows)))
    assert read_exclusions(str(path)) == {"1": {"a", "b"}, "2": set(), "3": {"c"}}


# ---------------------------------------------------------------- bad input: exit 2, one line


QRELS_4 = "1 0 d1 1\n1 0 d2 0\n"
BAD = [
    ({"qrels": QRELS_4 + "1 0 d3\n"}, ["-m", "map"], "qrels.txt:3: 3 columns in a 4-column TREC qrels file"),
    ({"qrels": "query-id\tcorpus-id\tscore\n1\td1\t1\n1 0 d2 1\n"}, ["-m", "map"],
     "qrels.txt:3: 4 columns in a 3-column BEIR qrels file"),
    ({"qrels": QRELS_4 + "1 0 d3 1 extra\n"}, ["-m", "map"], "qrels.txt:3: expected 4 columns"),
    ({"qrels": "# judged by me\n" + QRELS_4}, ["-m", "map"], "no comment lines"),
    ({}, ["-m", "nope"], "unknown measure 'nope'"),
    ({}, ["-m", "P.0"], "the cutoff must be at least 1"),
    ({}, ["-m", "P.x"], "cutoff 'x' is not a positive integer"),
    ({}, ["-m", "P."], "cutoff '' is not a positive integer"),
    ({}, ["-m", "ndcg.x"], "bad parameter 'x'"),
    ({}, ["-m", "utility.1,2"], "4 coefficients"),
    ({}, ["-m", "iprec_at_recall.-1"], "not a number >= 0"),
    ({}, ["-m", "map.10"], "map takes no parameter"),
    ({}, ["-M", "0", "-m", "map"], "-M must be at least 1"),
    ({"run": "1 Q0 d1 1 3.5\n"}, ["-m", "map"], "run.trec:1: expected 6 columns"),
]


@pytest.mark.parametrize("files,args,message", BAD)
def test_bad_input_exits_2_with_one_line(cli, tmp_path, files, args, message):
    run, qrels, out = tmp_path / "run.trec", tmp_path / "qrels.txt", tmp_path / "out.txt"
    run.write_text(files.get("run", "1 Q0 d1 1 3.5 t extra\n"))
    qrels.write_text(files.get("qrels", QRELS_4))
    result = cli("eval", run, "--qrels", qrels, "--format", "trec", "-o", out, *args)
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_c_is_accepted_and_documented(cli):
    result = cli("eval", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.decode().split())
    assert "-c" in text and "always aggregate as trec_eval -c" in text and "-M" in text and "--exclude" in text


def test_num_rel_under_l_with_and_without_c(cli, trec_eval, dl19, missing_run):
    """trec_eval's summary num_rel: -c counts every label > 0 of the qrels whatever -l says; without -c it
    sums the answered queries' num_rel at -l. `--format trec` follows -c; the table always aggregates as -c."""
    qrels = read_qrels(str(dl19["qrels"]))
    answered = set(read_run(str(missing_run)))
    for flags, count in ((["-c"], sum(rel > 0 for j in qrels.values() for rel in j.values())),
                         ([], sum(rel >= 2 for q, j in qrels.items() if q in answered for rel in j.values()))):
        args = [*flags, "-l", "2", "-m", "num_rel", "-m", "num_q", "-m", "map"]
        result = cli("eval", missing_run, "--qrels", dl19["qrels"], "--format", "trec", *args)
        assert result.returncode == 0, result.stderr.decode()
        lines = result.stdout.decode().splitlines()
        assert lines == trec_eval(*args, dl19["qrels"], missing_run)
        assert ["num_rel", "all", str(count)] in [line.split() for line in lines]
    table = [cli("eval", missing_run, "--qrels", dl19["qrels"], "-l", "2", "-m", "num_rel", *flags).stdout
             for flags in (["-c"], [])]
    assert table[0] == table[1] and str(sum(rel > 0 for j in qrels.values() for rel in j.values())) in table[0].decode()


def test_table_and_json_carry_text_measures(samples, dl19, tmp_path):
    """runid and relstring (text, not numbers) next to numbers, with a baseline, in table and json."""
    run = samples / "dl19-rankgpt-gpt35.trec"
    common = dict(baseline=str(dl19["bm25"]), per_query=True, permutations=100)
    out = tmp_path / "table.txt"
    run_eval([str(run)], str(dl19["qrels"]), ["official", "relstring"], output=str(out), **common)
    lines = out.read_text().splitlines()  # official: more than 8 measures, a row each
    assert "'3000000000'" in out.read_text() and any(line.startswith("num_rel_ret ") for line in lines)
    run_eval([str(run)], str(dl19["qrels"]), ["official", "relstring"], output=str(out), fmt="json", **common)
    data = orjson.loads(out.read_bytes())
    base = data["runs"][0]
    assert base["runid"] == "rank" and base["per_query"]["1037798"]["relstring"] == "3000000000"
    assert "runid" not in base["means"] and "relstring" not in data["runs"][1]["vs_baseline"]
