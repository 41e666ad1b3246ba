"""The typed records of every command's manifest or JSON summary (`rearank_cli.manifests`): each job writes
its record's bytes, and a file read back as its record gives the same bytes again."""

from __future__ import annotations

import orjson
import pytest

from rearank_cli.errors import InputError
from rearank_cli.jobs.augment import run as run_augment
from rearank_cli.jobs.context import JobContext
from rearank_cli.jobs.eval import run as run_eval
from rearank_cli.manifests import AugmentSummary, DoctorReport, EvalJson, IndexManifest, Record, RetrieveManifest
from rearank_cli.settings.commands import AugmentOptions, EvalOptions


def same_bytes(cls: type[Record], path: str) -> Record:
    """The record in `path`, after checking that it writes the file's bytes back unchanged."""
    raw = open(path, "rb").read()
    record = cls.from_json(orjson.loads(raw))
    assert record.dump() == raw
    return record


def test_eval_json_is_its_record(samples, tmp_path):
    out = str(tmp_path / "eval.json")
    run = str(samples / "dl19-bm25-top100.trec")
    options = EvalOptions(runs=[str(samples / "dl19-rankgpt-gpt35.trec")], qrels=str(samples / "dl19-qrels.txt"),
                          baseline=run, fmt="json", output=out, permutations=100)
    run_eval(options, JobContext())
    record = same_bytes(EvalJson, out)
    assert isinstance(record, EvalJson) and record.provenance.schema == "rearank.eval/1"
    assert record.settings == options.as_dict() and record.baseline == run and len(record.runs) == 2
    assert record.measures and all(set(m) == {"name", "trec_eval", "depth"} for m in record.measures)


def test_augment_summary_is_its_record(samples, tmp_path):
    out = str(tmp_path / "aug.jsonl")
    options = AugmentOptions(run=str(samples / "dl19-bm25-top100.trec"), qrels=str(samples / "dl19-qrels.txt"),
                             candidates=str(samples / "dl19-bm25-top100.candidates.json.gz"), samples_per_query=1,
                             output=out)
    counts = run_augment(options, JobContext())
    record = same_bytes(AugmentSummary, out + ".summary.json")
    assert isinstance(record, AugmentSummary) and record.settings == options.as_dict()
    assert record.counts == counts.to_json() and record.paths["output"] == out


def test_a_record_of_another_kind_or_a_newer_version_is_refused(tmp_path):
    block = {"schema": "rearank.retrieve.manifest/1", "index": "x", "k": 5}
    assert RetrieveManifest.from_json(block).to_json()["k"] == 5
    with pytest.raises(InputError, match="not a rearank.index.manifest"):
        IndexManifest.from_json(block)
    with pytest.raises(InputError, match="newer than this rearank reads"):
        RetrieveManifest.from_json({**block, "schema": "rearank.retrieve.manifest/9"})
    path = tmp_path / "bad.json"
    path.write_text("[1, 2")
    with pytest.raises(InputError, match="bad.json"):
        RetrieveManifest.read(str(path))


def test_index_counters_keep_their_place():
    data = {"schema": "rearank.index.manifest/1", "rearank_version": "0", "command": [], "created": None,
            "inputs": {}, "versions": {}, "collection": "BeirFlatCollection", "fields": [], "documents": 2,
            "indexed": 2, "empty": 0, "corpora": [{"path": "c", "bytes": 1, "documents": 2}], "seconds": 0.5}
    record = IndexManifest.from_json(data)
    assert record.counters == {"indexed": 2, "empty": 0} and record.settings is None
    assert list(record.to_json()) == list(data)  # no settings key where the file had none
    assert record.dump() == orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"


@pytest.mark.slow
def test_doctor_json_is_its_record(cli, tmp_path):
    done = cli("doctor", "--backend", "openai", "--format", "json", "-o", str(tmp_path))
    (tmp_path / "doctor.json").write_bytes(done.stdout)
    record = same_bytes(DoctorReport, str(tmp_path / "doctor.json"))
    assert isinstance(record, DoctorReport) and record.backend == "openai"
    assert done.returncode == (0 if record.ready else 1)


JOBS = ("index", "retrieve", "augment", "rerank", "merge", "train", "eval", "report", "doctor", "prompt", "dryrun")


@pytest.mark.parametrize("name", JOBS)
def test_every_job_has_one_entry_point_of_one_shape(name):
    """`run(options, context)` in each job module, and the command calls that and no other job function."""
    import ast
    import importlib
    import inspect

    from tests.conftest import ROOT

    job = importlib.import_module(f"rearank_cli.jobs.{name}")
    signature = inspect.signature(job.run)
    assert list(signature.parameters) == ["options", "context"]
    assert signature.parameters["context"].annotation == "JobContext"
    assert signature.parameters["options"].annotation.endswith("Options")
    module = {"index": "retrieve", "merge": "rerank", "dryrun": "rerank"}.get(name, name)
    tree = ast.parse((ROOT / "rearank_cli" / "commands" / f"{module}.py").read_text())
    imported = {(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names if (node.module or "").startswith("rearank_cli.jobs")}
    assert any(item == (f"rearank_cli.jobs.{name}", "run") for item in imported)
    assert {item for item in imported if item[0] not in ("rearank_cli.jobs.context",)} <= {
        (f"rearank_cli.jobs.{job}", "run") for job in JOBS}
