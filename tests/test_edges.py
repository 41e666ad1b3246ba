"""Bad input at the edges, through the real CLI: every case exits 2 with one line naming the file, and
leaves no output behind (merge's shards, corrupt compressed input, usage errors, missing model paths,
a journal or a training folder that a run without --resume would overwrite)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tests.test_cli_errors import check_failure

DL19 = "sample_runs/dl19-bm25-top100.trec"
QRELS = "sample_runs/dl19-qrels.txt"
CANDS = "sample_runs/dl19-bm25-top100.candidates.json.gz"
TOPICS = "sample_runs/dl19-topics.tsv"
CORPUS = "sample_runs/scifact-slice-corpus.jsonl.gz"
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


def corrupt_gzip(path, text: str = GOOD) -> None:
    """A file with the gzip magic and a valid header, then bytes no deflate stream holds."""
    path.write_bytes(gzip.compress(text.encode())[:10] + b"\xff" * 64)


def cut_gzip(path, text: str = GOOD * 200) -> None:
    """A gzip file cut in the middle of its data."""
    data = gzip.compress(text.encode())
    path.write_bytes(data[: len(data) // 2])


# each reader, and the command that reaches it before any heavy work: {name: (file, args, output flag)}
READERS = {
    "eval run": ("run.trec.gz", ["eval", "{bad}", "--qrels", QRELS]),
    "eval qrels": ("qrels.txt.gz", ["eval", DL19, "--qrels", "{bad}"]),
    "eval exclude": ("exclude.tsv.gz", ["eval", DL19, "--qrels", QRELS, "--exclude", "{bad}"]),
    "rerank run": ("run.trec.gz", ["rerank", "{bad}", "--candidates", CANDS]),
    "rerank candidates": ("candidates.json.gz", ["rerank", DL19, "--candidates", "{bad}"]),
    "rerank topics": ("topics.tsv.gz", ["rerank", DL19, "--topics", "{bad}", "--corpus", CORPUS]),
    "rerank corpus": ("corpus.jsonl.gz", ["rerank", DL19, "--topics", TOPICS, "--corpus", "{bad}"]),
    "augment corpus": ("corpus.jsonl.gz", ["augment", DL19, "--qrels", QRELS, "--topics", TOPICS, "--corpus",
                                           "{bad}"]),
}


@pytest.mark.parametrize("damage", [corrupt_gzip, cut_gzip], ids=["corrupt", "cut"])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_broken_gzip_names_the_file(cli, tmp_path, reader, damage):
    name, args = READERS[reader]
    bad = tmp_path / name
    damage(bad)
    out = tmp_path / "out.txt"
    result = cli(*[str(bad) if arg == "{bad}" else arg for arg in args], "-o", out)
    fragment = "corrupt gzip data" if damage is corrupt_gzip else "gzip data cut short"
    check_failure(result, f"{name}: {fragment}", out)


def test_a_crash_names_a_lowercase_exception_with_its_module():
    import zlib

    from rearank_cli.cli import crash_name

    assert crash_name(zlib.error("x")) == "zlib.error"
    assert crash_name(ValueError("x")) == "ValueError"


def one_query_run(samples, out):
    """The first query of the DL19 BM25 run, top 20."""
    out.write_text("".join((samples / "dl19-bm25-top100.trec").read_text().splitlines(True)[:20]))
    return out


def test_a_journal_with_windows_is_refused_without_resume(cli, tmp_path, samples):
    run = one_query_run(samples, tmp_path / "run.trec")
    out = tmp_path / "out.trec"
    trace = tmp_path / "out.trec.trace.jsonl"
    trace.write_bytes(b'{"type": "header"}\n{"type": "window"}\n{"type": "window"}\n')
    before = trace.read_bytes()
    result = cli("rerank", run, "--candidates", CANDS, "-o", out)
    check_failure(result, f"{trace}: the journal holds 2 window(s) of an earlier run", out)
    assert "--resume" in result.stderr.decode() and "--overwrite" in result.stderr.decode()
    assert trace.read_bytes() == before
    check_failure(cli("rerank", run, "--candidates", CANDS, "--resume", "--overwrite", "-o", out),
                  "give --resume (go on from the journal) or --overwrite (start over), not both", out)
    assert trace.read_bytes() == before
    other = tmp_path / "other.jsonl"
    other.write_bytes(before)
    check_failure(cli("rerank", run, "--candidates", CANDS, "--trace", other, "-o", "-"), f"{other}: the journal",
                  out)
    assert other.read_bytes() == before


@pytest.mark.slow
def test_a_journal_is_kept_resumed_or_overwritten_on_request(cli, tmp_path, samples, tiny_model):
    """A real journal: a second run without --resume is refused and changes nothing (journal, output,
    manifest); --resume replays it; --overwrite starts over; a header-only journal is reused silently."""
    run = one_query_run(samples, tmp_path / "run.trec")
    out = tmp_path / "out.trec"
    trace = Path(f"{out}.trace.jsonl")
    args = ["rerank", run, "--candidates", CANDS, "--backend", "hf", "--model", tiny_model, "--device", "cpu",
            "--max-tokens", "4", "-o", out]
    first = cli(*args)
    assert first.returncode == 0, first.stderr.decode()[-2000:]
    files = {path: path.read_bytes() for path in (out, trace, Path(f"{out}.manifest.json"))}
    refused = cli(*args)
    assert refused.returncode == 2 and "holds 1 window(s) of an earlier run" in refused.stderr.decode()
    assert {path: path.read_bytes() for path in files} == files
    resumed = cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert out.read_bytes() == files[out] and trace.read_bytes() == files[trace]
    again = cli(*args, "--overwrite")
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    assert "--overwrite: starting over" in again.stderr.decode()
    assert len(trace.read_bytes().splitlines()) == 2  # a new header and the window, generated again
    trace.write_bytes(trace.read_bytes().splitlines(True)[0])
    reused = cli(*args)
    assert reused.returncode == 0, reused.stderr.decode()[-2000:]
    assert len(trace.read_bytes().splitlines()) == 2


def tree(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_train_refuses_a_folder_of_an_earlier_run(cli, tmp_path):
    """Before anything is read or loaded: a folder with files is refused and left as it was; --overwrite
    passes that check (and fails later, here at the missing qrels file); --overwrite and --resume-from
    together are a usage error."""
    out = tmp_path / "out"
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (out / "rearank_train.json").write_text("{}")
    before = tree(out)
    rows = tmp_path / "train.jsonl"
    rows.write_text("{}\n")
    args = ["train", rows, "--model", "m", "--qrels", tmp_path / "no-qrels.txt", "-o", out]
    result = cli(*args)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        f"rearank: error: {out}: the output folder holds files of an earlier run (checkpoint-2, rearank_train.json):"
        " rerun with --resume-from auto to go on from its last checkpoint, or with --overwrite to start over"]
    assert tree(out) == before
    result = cli(*args, "--overwrite")
    assert result.returncode == 2 and "no-qrels.txt: file not found" in result.stderr.decode()
    assert tree(out) == before
    result = cli(*args, "--overwrite", "--resume-from", "auto")
    assert result.returncode == 2 and "not both" in result.stderr.decode()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("train", rows, "--model", "m", "--qrels", tmp_path / "no-qrels.txt", "-o", empty)
    assert result.returncode == 2 and "no-qrels.txt: file not found" in result.stderr.decode()


def test_starting_over_drops_the_earlier_checkpoints(tmp_path):
    from rearank_cli.jobs.train import LOG_FILE, drop_earlier_run

    for name in ("checkpoint-1", "checkpoint-20"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"x")
    (tmp_path / LOG_FILE).write_text("{}\n")
    (tmp_path / "notes.txt").write_text("mine")
    drop_earlier_run(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


RERANK = ["rerank", DL19, "--candidates", CANDS]
TRAIN = ["train", "t.jsonl", "--model", "m", "--qrels", QRELS]
# a bad value of each bounded or listed flag: (command line, the flag the message names)
USAGE_ERRORS = [
    ([*RERANK, "--backend", "hf", "--batch-size", "0"], "--batch-size"),
    ([*RERANK, "--backend", "hf", "--dtype", "foo"], "--dtype"),
    ([*RERANK, "--backend", "hf", "--device", "gpu"], "--device"),
    ([*RERANK, "--backend", "hf", "--device", "cuda:"], "--device"),
    ([*RERANK, "--tensor-parallel-size", "0"], "--tensor-parallel-size"),
    ([*RERANK, "--data-parallel-size", "0"], "--data-parallel-size"),
    ([*RERANK, "--gpu-memory-utilization", "0"], "--gpu-memory-utilization"),
    ([*RERANK, "--gpu-memory-utilization", "1.5"], "--gpu-memory-utilization"),
    ([*RERANK, "--max-model-len", "0"], "--max-model-len"),
    ([*RERANK, "--max-num-seqs", "0"], "--max-num-seqs"),
    ([*RERANK, "--lora", "x", "--max-lora-rank", "0"], "--max-lora-rank"),
    ([*RERANK, "--backend", "openai", "--retries", "-1"], "--retries"),
    ([*RERANK, "--backend", "openai", "--request-timeout", "0"], "--request-timeout"),
    ([*RERANK, "--temperature", "-1"], "--temperature"),
    ([*RERANK, "--max-tokens", "0"], "--max-tokens"),
    ([*RERANK, "--max-inflight", "0"], "--max-inflight"),
    ([*RERANK, "--depth", "0"], "--depth"),
    ([*RERANK, "--window", "1"], "window"),
    ([*TRAIN, "--lr", "-1"], "--lr"),
    ([*TRAIN, "--kl", "-0.1"], "--kl"),
    ([*TRAIN, "--clip", "-0.2"], "--clip"),
    ([*TRAIN, "--temperature", "0"], "--temperature"),
    ([*TRAIN, "--seed", "-1"], "--seed"),
    ([*TRAIN, "--num-generations", "1"], "--num-generations"),
    (["retrieve", "index", "--topics", "t.tsv", "--b", "2"], "--b"),
    (["retrieve", "index", "--topics", "t.tsv", "--k1", "-1"], "--k1"),
    (["eval", DL19, "--qrels", QRELS, "--permutations", "0"], "--permutations"),
]


@pytest.mark.parametrize(("args", "flag"), USAGE_ERRORS, ids=[" ".join(a[-2:]) for a, _ in USAGE_ERRORS])
def test_usage_errors_exit_2_naming_the_flag(tmp_path, capsys, args, flag):
    """Checked from the settings' declarations before any input is read or any model loaded (in-process:
    the CLI's own exit status and stderr)."""
    from rearank_cli.cli import run

    out = tmp_path / "out"
    assert run([*args, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rearank: error:") and flag in err[0], err
    assert not out.exists()


def test_settings_objects_refuse_the_same_values():
    """The Python API builds the same settings objects, so it refuses the same values."""
    from rearank_cli.errors import InputError
    from rearank_cli.settings.backends import HfOptions, VllmOptions
    from rearank_cli.settings.rerank import RerankOptions

    for build in (lambda: HfOptions(batch_size=0), lambda: HfOptions(device="gpu"),
                  lambda: RerankOptions(output="o", dtype="foo"), lambda: VllmOptions(gpu_memory_utilization=0)):
        with pytest.raises(InputError):
            build()
    assert HfOptions(device="cuda:12").device == "cuda:12" and RerankOptions(output="o", dtype="half").dtype == "half"


TYPOS = ["./typo", "../typo", "typo/", "~/no-such-model-folder", "a/b/typo", "sample_runs/typo", "-x", "a..b",
         "typo.gguf"]


@pytest.mark.parametrize("name", [*TYPOS, "ABSOLUTE"])
def test_a_model_path_that_is_not_there(name, tmp_path):
    from rearank_cli.errors import InputError
    from rearank_cli.model_check import locate_model

    name = str(tmp_path / "typo") if name == "ABSOLUTE" else name
    with pytest.raises(InputError, match=f"model {name}: no such file or folder") as caught:
        locate_model(name, demo_hint=True)
    assert "demo model" in str(caught.value)


@pytest.mark.parametrize("command", ["rerank", "train"])
def test_rerank_and_train_report_a_relative_typo_as_a_missing_folder(cli, tmp_path, samples, command):
    out = tmp_path / "out"
    if command == "rerank":
        result = cli("rerank", one_query_run(samples, tmp_path / "run.trec"), "--candidates", CANDS, "--backend", "hf",
                     "--model", "./typo", "-o", out)
    else:  # train reads its samples first: give it real ones
        rows = tmp_path / "train.jsonl"
        made = cli("augment", DL19, "--qrels", QRELS, "--candidates", CANDS, "--samples-per-query", "1", "-o", rows)
        assert made.returncode == 0, made.stderr.decode()
        result = cli("train", rows, "--model", "./typo", "--qrels", QRELS, "--prompts-per-step", "2",
                     "--num-generations", "2", "-o", out)
    check_failure(result, "model ./typo: no such file or folder", out)


def test_doctor_prints_its_checks_with_the_model_failing(cli):
    result = cli("doctor", "--backend", "hf", "--model", "./typo")
    assert result.returncode == 1
    text = result.stdout.decode()
    assert "FAIL  model        model ./typo: no such file or folder" in text
    assert "python" in text and "disk" in text and "not ready for --backend hf: model failed" in text


def warnings_of(result) -> list[str]:
    return [line for line in result.stderr.decode().splitlines() if "not read by --backend" in line]


def test_options_of_another_backend_warn_in_one_line(cli, tmp_path):
    """Flags given on the command line or in --config that the chosen backend does not read: one line naming
    them all (the run goes on; here it stops at the missing model). Defaults and environment variables are
    not warned about."""
    base = [*RERANK, "--model", "./typo", "-o", tmp_path / "out.trec"]
    result = cli(*base, "--backend", "hf", "--max-model-len", "10", "--base-url", "http://x/v1", "--retries", "2")
    assert warnings_of(result) == ["rearank: --max-model-len, --base-url, --retries are not read by --backend hf: "
                                   "ignored"]
    result = cli(*base, "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--dtype", "half",
                 "--batch-size", "2")
    assert warnings_of(result) == ["rearank: --batch-size, --dtype are not read by --backend openai: ignored"]
    config = tmp_path / "c.toml"
    config.write_text("max-num-seqs = 4\ndevice = \"cpu\"\n")
    result = cli(*base, "--config", config)  # the default backend, vllm
    assert warnings_of(result) == ["rearank: --device is not read by --backend vllm: ignored"]
    result = cli(*base, "--backend", "hf", "--dtype", "float32", "--device", "cpu", env={"OPENAI_BASE_URL": "http://y"})
    assert warnings_of(result) == []


@pytest.mark.slow
def test_doctor_predicts_the_kv_cache_a_cpu_start_picks(cli, tiny_model):
    """`doctor --backend vllm` on a CPU with VLLM_CPU_KVCACHE_SPACE unset reports the size the backend's start
    picks (the same `kv_cache.plan`, from the memory free when it looked) and that one sequence fits."""
    import json

    from rearank_cli import kv_cache

    env = {kv_cache.ENV: ""}
    result = cli("doctor", "--model", tiny_model, "--format", "json", env=env)
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    if checks["vllm"]["data"].get("platform") != "cpu":
        pytest.skip("vLLM is not on the CPU platform here")
    found = checks["kv cache"]
    assert found["status"] == "ok" and found["needed"], found
    data = found["data"]
    config = json.loads((tiny_model / "config.json").read_text())
    assert data["context"] == 32768 and data["sequence"] == kv_cache.bytes_per_token(config) * 32768
    assert data["size"] == kv_cache.plan(data["available"], data["weights"], kv_cache.bytes_per_token(config),
                                         32768).size
    assert found["detail"].startswith("rerank will take a KV cache of ")


def test_doctor_fails_a_kv_cache_that_cannot_hold_one_sequence(tiny_model, monkeypatch):
    from rearank_cli.diagnostics.checks import Check, check_kv_cache

    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    vllm, model = Check("vllm", "ok", "", data={"platform": "cpu"}), Check("model", "ok", "")
    found = check_kv_cache(str(tiny_model), vllm, model, available=1 << 20)
    assert found.status == "fail" and "one sequence of 32,768 tokens needs" in found.detail
    assert found.fix.startswith("rearank rerank --max-model-len 1024")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")
    assert check_kv_cache(str(tiny_model), vllm, model).status == "ok"
    assert check_kv_cache(str(tiny_model), Check("vllm", "ok", "", data={"platform": "cuda"}), model).status == "skip"
