"""Bad input at the edges, through the real CLI: every case exits 2 with one line naming the file, and
leaves no output behind (merge's shards, corrupt compressed input, usage errors, missing model paths,
a journal or a training folder that a run without --resume would overwrite)."""

from __future__ import annotations

import pytest

from tests.test_cli_errors import check_failure

DL19 = "sample_runs/dl19-bm25-top100.trec"
QRELS = "sample_runs/dl19-qrels.txt"
CANDS = "sample_runs/dl19-bm25-top100.candidates.json.gz"
GOOD = "19335 Q0 d1 1 3.5 t\n19335 Q0 d2 2 2.5 t\n"

BAD_SHARDS = {
    "empty": ("", "shard.trec: run is empty"),
    "blank": ("\n\n", "shard.trec: run is empty"),
    "score": ("19335 Q0 d1 1 abc t\n", "shard.trec:1: score 'abc' is not a number"),
    "duplicate": (GOOD + "19335 Q0 d1 3 1.5 t\n", "shard.trec:3: docid 'd1' appears twice"),
    "columns": (GOOD + "19335 Q0 d3 3\n", "shard.trec:3: expected 6 columns"),
    "infinite": ("19335 Q0 d1 1 inf t\n", "shard.trec:1: score 'inf' is not finite"),
}


@pytest.mark.parametrize("case", sorted(BAD_SHARDS))
def test_merge_checks_each_shard_as_eval_does(cli, tmp_path, case):
    text, fragment = BAD_SHARDS[case]
    good = tmp_path / "good.trec"
    good.write_text("1 Q0 x 1 1.0 t\n")
    shard = tmp_path / "shard.trec"
    shard.write_text(text)
    out = tmp_path / "merged.trec"
    check_failure(cli("merge", good, shard, "-o", out), fragment, out)
    assert not (tmp_path / "merged.trec.manifest.json").exists()
    # eval agrees: what merge refuses, eval refuses with the same line
    check_failure(cli("eval", shard, "--qrels", QRELS, "-o", tmp_path / "eval.txt"), fragment, tmp_path / "eval.txt")


def test_merge_checks_the_expected_run(cli, tmp_path):
    shard = tmp_path / "good.trec"
    shard.write_text(GOOD)
    expect = tmp_path / "expect.trec"
    expect.write_text(GOOD + "19335 Q0 d3 3 x t\n")
    out = tmp_path / "merged.trec"
    check_failure(cli("merge", shard, "--expect", expect, "-o", out), "expect.trec:3: score 'x'", out)


def test_merge_takes_the_empty_shard_rerank_writes(cli, tmp_path, samples):
    """A run with fewer queries than shards leaves a shard with no queries: rerank writes it empty with a
    manifest saying so, and merge takes it; the same empty file without that manifest is refused."""
    run = tmp_path / "two.trec"
    run.write_text("".join((samples / "dl19-bm25-top100.trec").read_text().splitlines(True)[:200]))
    shard = tmp_path / "2.trec"
    result = cli("rerank", run, "--candidates", CANDS, "--shard", "2/3", "-o", shard)
    assert result.returncode == 0, result.stderr.decode()
    assert shard.read_bytes() == b""
    merged = tmp_path / "merged.trec"
    result = cli("merge", shard, "-o", merged)
    assert result.returncode == 0, result.stderr.decode()
    assert merged.read_bytes() == b""
    bare = tmp_path / "bare.trec"
    bare.write_bytes(b"")
    check_failure(cli("merge", bare, "-o", tmp_path / "m2.trec"), "bare.trec: run is empty", tmp_path / "m2.trec")
