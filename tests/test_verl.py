"""rearank with VeRL's own code: its Hydra config, RLHFDataset, custom-reward loaders and reward manager.

VeRL lives in a virtualenv of its own (its trl pin clashes with the [train] extra): `.ci/run` makes one
with scripts/ci_verl.sh and names its python in $REARANK_VERL_PYTHON (older releases' sources in
$REARANK_VERL_OLD_SOURCES). Every VeRL call runs in a subprocess with that python (tests/verl_checks.py);
the expected rewards are computed here by hand from the labels and the qrels, not by rearank's code.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES, augment_parquet

pytestmark = pytest.mark.slow  # end to end: real CLI processes, servers, JVM, SLURM or VeRL

VERL_PYTHON = os.environ.get("REARANK_VERL_PYTHON", "")
OLD_SOURCES = os.environ.get("REARANK_VERL_OLD_SOURCES", "")
CHECKS = ROOT / "tests" / "verl_checks.py"
LAUNCH = ROOT / "examples" / "verl" / "train_grpo.sh"
REWARD_FILE = str(ROOT / "rearank_cli" / "reward.py")
PKG = "pkg://rearank_cli.reward"
# One release per distinct custom-reward loader: 0.4-0.5 exec the file as `custom_module` (registered in
# sys.modules); 0.6 also reuses it; 0.7.0 adds pkg:// and stops registering the file; 0.7.1 moves the key
# to reward.custom_reward_function (the installed 0.9.x loader is 0.8.0's).
OLD_VERSIONS = ["0.4.1", "0.6.1", "0.7.0", "0.7.1"]
PKG_SINCE = (0, 7, 0)

needs_verl = pytest.mark.skipif(
    not (VERL_PYTHON and os.access(VERL_PYTHON, os.X_OK)),
    reason="no VeRL virtualenv: set REARANK_VERL_PYTHON (`eval \"$(bash scripts/ci_verl.sh)\"` makes one)",
)


# --- by hand: spec section 7, nDCG@10 with linear gain and log2(rank + 1) discount ---------------------


def dcg10(labels: list[int]) -> float:
    """DCG@10 with the label as the gain."""
    return sum(label / math.log2(rank + 2) for rank, label in enumerate(labels[:10]))


def qrels_by_hand(path: Path) -> dict[str, list[int]]:
    """All judged labels of each query, read straight from the 4-column qrels file."""
    judged: dict[str, list[int]] = {}
    for line in path.read_text().splitlines():
        qid, _, _, label = line.split()
        judged.setdefault(qid, []).append(int(label))
    return judged


def responses_for(labels: list[int]) -> list[tuple[str, str, list[int], float, float]]:
    """(name, text, order read, format, list) of the four crafted responses for a window with `labels`."""
    n = len(labels)
    ideal = sorted(range(n), key=lambda i: -labels[i])
    ids = lambda order: " > ".join(f"[{i + 1}]" for i in order)  # noqa: E731
    return [
        ("ideal", f"<think>most relevant first</think>\n<answer>{ids(ideal)}</answer>", ideal, 1.0, 1.0),
        ("identity", f"<think>keep it</think><answer>{ids(range(n))}</answer>", list(range(n)), 1.0, 1.0),
        ("reversed", f"<answer>{ids(reversed(range(n)))}</answer>", list(reversed(range(n))), 0.0, 1.0),
        ("malformed", "I cannot rank these passages.", list(range(n)), 0.0, 0.0),
    ]


def expected_reward(labels: list[int], idcg: float, order: list[int], fmt: float, lst: float) -> float:
    """0.8 * (r_rerank - r_init) / (r_best - r_init) + 0.1 * format + 0.1 * list."""
    r_init, r_best = dcg10(labels) / idcg, dcg10(sorted(labels, reverse=True)) / idcg
    r_rerank = dcg10([labels[i] for i in order]) / idcg
    return 0.8 * (r_rerank - r_init) / (r_best - r_init) + 0.1 * fmt + 0.1 * lst


# --- running VeRL ----------------------------------------------------------------------------------------


def verl_env(pythonpath: list[str], tmp: Path) -> dict[str, str]:
    """The subprocess environment: offline, caches under tmp, PYTHONPATH exactly `pythonpath`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_CACHE=str(tmp / "hf-datasets"), TOKENIZERS_PARALLELISM="false",
               RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=os.pathsep.join(pythonpath))
    return env


def start_checks(mode: str, job: dict, tmp: Path, pythonpath: list[str], name: str) -> subprocess.Popen:
    """Start tests/verl_checks.py MODE on `job` with the VeRL python (cwd = tmp, not the worktree)."""
    job_file = tmp / f"{name}.json"
    job_file.write_text(json.dumps(job))
    return subprocess.Popen([VERL_PYTHON, str(CHECKS), mode, str(job_file)], cwd=tmp,
                            env=verl_env(pythonpath, tmp), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish_checks(proc: subprocess.Popen, timeout: float = 400) -> dict:
    """The JSON result of a verl_checks.py run; fails with its stderr when it did not finish cleanly."""
    out, err = proc.communicate(timeout=timeout)
    lines = [line for line in out.decode().splitlines() if line.startswith("VERL_CHECKS_JSON ")]
    assert proc.returncode == 0 and lines, err.decode()[-4000:]
    return json.loads(lines[-1].removeprefix("VERL_CHECKS_JSON "))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A scratch folder for this module."""
    return tmp_path_factory.mktemp("verl")


@pytest.fixture(scope="module")
def parquet_rows(work, cli) -> tuple[Path, list[dict]]:
    """`rearank augment --format parquet` on the DL19 sample run (2 samples per query) and its rows."""
    pq = pytest.importorskip("pyarrow.parquet")
    out = augment_parquet(work / "train.parquet")
    return out, pq.read_table(out).to_pylist()


@pytest.fixture(scope="module")
def prompt_lengths(tiny_model, parquet_rows) -> dict[int, int]:
    """Token count of each row's prompt with the chat template and generation prompt (tiny tokenizer)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    _, rows = parquet_rows
    return {row["extra_info"]["index"]: len(tokenizer.apply_chat_template(
        row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False)) for row in rows}


@pytest.fixture(scope="module")
def launch_config(work, parquet_rows) -> str:
    """The launch script's config as VeRL's own Hydra entry point composes it (`--cfg job`: no training)."""
    env = verl_env([], work)
    env.update(PYTHON=VERL_PYTHON, TRAIN_FILES=str(parquet_rows[0]))
    result = subprocess.run(["bash", str(LAUNCH), "--cfg", "job", "--resolve"], cwd=work, env=env,
                            capture_output=True, timeout=400)
    assert result.returncode == 0, result.stderr.decode()[-4000:]
    return result.stdout.decode()


@pytest.fixture(scope="module")
def chosen(parquet_rows, prompt_lengths) -> tuple[int, list[dict]]:
    """max_prompt_length for the dataset (the median prompt length) and three kept rows with r_best > r_init."""
    _, rows = parquet_rows
    limit = int(statistics.median(prompt_lengths.values()))
    kept = [row for row in rows if prompt_lengths[row["extra_info"]["index"]] <= limit
            and row["extra_info"]["r_best"] - row["extra_info"]["r_init"] > 0.05]
    assert len(kept) >= 3
    return limit, kept[:3]


@pytest.fixture(scope="module")
def full_run(work, parquet_rows, tiny_model, launch_config, chosen) -> dict:
    """VeRL 0.9 validation of the launch config, its dataset on the parquet, its reward manager."""
    limit, rows = chosen
    responses = [{"index": row["extra_info"]["index"], "text": text}
                 for row in rows for _, text, *_ in responses_for(row["reward_model"]["ground_truth"]["labels"])]
    job = {"config_yaml": launch_config, "parquet": str(parquet_rows[0]), "tokenizer": str(tiny_model),
           "max_prompt_length": limit, "responses": responses}
    return finish_checks(start_checks("full", job, work, [str(ROOT)], "full"))


@pytest.fixture(scope="module")
def cases(chosen) -> list[dict]:
    """Loader cases: the four crafted responses on the first chosen row, with the expected reward."""
    row = chosen[1][0]
    truth = row["reward_model"]["ground_truth"]
    idcg = dcg10(sorted(qrels_by_hand(SAMPLES / "dl19-qrels.txt")[row["extra_info"]["qid"]], reverse=True))
    return [{"solution_str": text, "ground_truth": truth,
             "expected": expected_reward(truth["labels"], idcg, order, fmt, lst)}
            for _, text, order, fmt, lst in responses_for(truth["labels"])]


@pytest.fixture(scope="module")
def loader_runs(work, cases) -> dict[str, dict]:
    """Each VeRL's custom-reward loader on pkg:// and on the reward file, all started at once.

    pkg:// goes first: VeRL 0.6 caches the first module it loads as `custom_module` and returns it for
    any later path, which would hide its refusal of pkg://.

    "installed": the VeRL venv's own release, with rearank NOT importable (the file must bring its
    package); "installed-pkg": the same with the worktree on PYTHONPATH; then older releases' sources.
    """
    job = {"paths": [PKG, REWARD_FILE], "cases": [{k: c[k] for k in ("solution_str", "ground_truth")}
                                                  for c in cases]}
    procs = {
        "installed": start_checks("loader", {**job, "paths": [REWARD_FILE]}, work, [], "loader-file"),
        "installed-pkg": start_checks("loader", {**job, "paths": [PKG]}, work, [str(ROOT)], "loader-pkg"),
    }
    for version in OLD_VERSIONS:
        source = Path(OLD_SOURCES, version)
        if OLD_SOURCES and (source / "verl").is_dir():
            procs[version] = start_checks("loader", job, work, [str(source), str(ROOT)], f"loader-{version}")
    return {name: finish_checks(proc) for name, proc in procs.items()}


# --- the tests --------------------------------------------------------------------------------------------


def test_reward_imports_only_the_standard_library_and_loads_as_an_unregistered_file(tmp_path):
    """What a VeRL worker does (>= 0.7: exec the file under a name missing from sys.modules), without
    VeRL, in a Python without site-packages (`-S`: neither rearank nor any third-party package)."""
    code = (
        "import importlib.util, json, sys\n"
        "assert importlib.util.find_spec('rearank_cli') is None\n"
        f"spec = importlib.util.spec_from_file_location('custom_module_1', {REWARD_FILE!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "truth = {'labels': [0, 1, 2, 3, 0], 'idcg': 5.0, 'r_init': 0.1, 'r_best': 0.9}\n"
        "score = module.compute_score('rearank', '<think>t</think><answer>[4] > [3]</answer>', truth)\n"
        "own = set(sys.stdlib_module_names) | {'rearank_cli', '__main__'}\n"
        "third = sorted({m.split('.')[0] for m in sys.modules} - own)\n"
        "print(json.dumps({'score': score['score'], 'third_party': third}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code], cwd=tmp_path, env=env, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    out = json.loads(result.stdout)
    r_rerank = dcg10([3, 2, 0, 1, 0]) / 5.0
    assert out["score"] == pytest.approx(0.8 * (r_rerank - 0.1) / 0.8 + 0.2)
    assert out["third_party"] == []


def test_launch_scripts_parse():
    for script in (LAUNCH, LAUNCH.with_name("slurm_ray.sbatch")):
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True)
        assert result.returncode == 0, result.stderr.decode()


@needs_verl
def test_launch_script_composes_with_the_papers_settings(full_run):
    config = full_run["config"]
    assert config == {**config, "n": 32, "train_batch_size": 128, "lr": 1e-6, "lr_scheduler_type": "constant",
                      "warmup_ratio": 0.0, "use_kl_loss": True, "kl_loss_coef": 0.01, "kl_loss_type": "low_var_kl",
                      "use_kl_in_reward": False, "clip_ratio": 0.2, "temperature": 1.0, "max_prompt_length": 3072,
                      "prompt_length": 3072, "filter_overlong_prompts": True, "response_length": 2048,
                      "adv_estimator": "grpo", "ppo_mini_batch_size": 128, "reward_path": PKG,
                      "reward_name": "compute_score", "use_reference_policy": True, "use_critic": False}


@needs_verl
def test_launch_script_rejects_an_unknown_key(work):
    env = verl_env([], work)
    env["PYTHON"] = VERL_PYTHON
    result = subprocess.run(["bash", str(LAUNCH), "data.max_prompt_len=3072", "--cfg", "job"], cwd=work, env=env,
                            capture_output=True, timeout=400)
    assert result.returncode != 0
    assert b"max_prompt_len" in result.stderr


@needs_verl
def test_verl_dataset_reads_augment_parquet(full_run, parquet_rows, prompt_lengths, chosen):
    limit, _ = chosen
    _, rows = parquet_rows
    dataset = full_run["dataset"]
    assert dataset["class"] == "RLHFDataset"
    keep = {index for index, length in prompt_lengths.items() if length <= limit}
    assert 0 < len(keep) < len(rows)  # filter_overlong_prompts dropped the longer half, kept the rest
    assert [row["index"] for row in dataset["rows"]] == sorted(keep)
    by_index = {row["extra_info"]["index"]: row for row in rows}
    for item in dataset["rows"]:
        row = by_index[item["index"]]
        assert item["raw_prompt"] == row["prompt"]
        assert item["data_source"] == "rearank"
        assert item["ground_truth"] == row["reward_model"]["ground_truth"]
        assert item["qid"] == row["extra_info"]["qid"]


@needs_verl
def test_verl_reward_manager_scores_crafted_responses(full_run, chosen):
    _, rows = chosen
    judged = qrels_by_hand(SAMPLES / "dl19-qrels.txt")
    results = iter(full_run["rewards"])
    for row in rows:
        truth = row["reward_model"]["ground_truth"]
        labels = truth["labels"]
        idcg = dcg10(sorted(judged[row["extra_info"]["qid"]], reverse=True))
        assert truth["idcg"] == pytest.approx(idcg)
        assert truth["r_init"] == pytest.approx(dcg10(labels) / idcg)
        for name, _, order, fmt, lst in responses_for(labels):
            got = next(results)
            assert got["manager"] == "NaiveRewardManager"
            want = expected_reward(labels, idcg, order, fmt, lst)
            assert got["reward_score"] == pytest.approx(want, abs=1e-9), name
            assert (got["extra"]["format"], got["extra"]["list"]) == (fmt, lst), name
    # The first row's four, in words: ideal 0.8 + 0.1 + 0.1, identity 0 + 0.1 + 0.1, malformed 0.
    first = [r["reward_score"] for r in full_run["rewards"][:4]]
    assert (first[0], first[1], first[3]) == pytest.approx((1.0, 0.2, 0.0))


@needs_verl
def test_installed_verl_loads_the_reward_file_without_rearank_installed(loader_runs, cases):
    run = loader_runs["installed"]
    assert run["version"] == "0.9.1" and not run["rearank_importable"]
    scores = run["results"][REWARD_FILE]["scores"]
    assert [s["score"] for s in scores] == pytest.approx([c["expected"] for c in cases], abs=1e-9)


@needs_verl
def test_installed_verl_loads_the_reward_by_pkg(loader_runs, cases):
    run = loader_runs["installed-pkg"]
    scores = run["results"][PKG]["scores"]
    assert [s["score"] for s in scores] == pytest.approx([c["expected"] for c in cases], abs=1e-9)


@needs_verl
@pytest.mark.parametrize("version", OLD_VERSIONS)
def test_older_verl_loaders(loader_runs, cases, version):
    if version not in loader_runs:
        pytest.skip(f"no sources of verl {version}: set REARANK_VERL_OLD_SOURCES (scripts/ci_verl.sh)")
    run = loader_runs[version]
    assert run["version"] == version and run["verl_file"].startswith(OLD_SOURCES)
    expected = pytest.approx([c["expected"] for c in cases], abs=1e-9)
    assert [s["score"] for s in run["results"][REWARD_FILE]["scores"]] == expected
    pkg = run["results"][PKG]
    if tuple(int(p) for p in version.split(".")) >= PKG_SINCE:
        assert [s["score"] for s in pkg["scores"]] == expected
    else:  # VeRL < 0.7 only takes a file path; it says so
        assert pkg["error"].startswith("FileNotFoundError")
