"""The typed records read back what rerank and merge write, byte for byte; older files (a field missing)
still read; a newer schema version or a malformed record is one InputError naming the file (and line)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from rearank_cli.errors import InputError
from rearank_cli.jobs.merge import merge_runs
from rearank_cli.jobs.rerank import run_rerank
from rearank_cli.provenance import SCHEMAS
from rearank_cli.rerank.journal import read_header, read_journal
from rearank_cli.rerank.manifests import MergeManifest, RerankManifest, ShardFiles, read_manifest
from rearank_cli.rerank.records import (
    JournalHeader,
    WindowRecord,
)
from tests.rerank.test_rerank import ScriptedBackend, job_for


@pytest.fixture(scope="module")
def shards(samples, tmp_path_factory):
    """Two shards reranked (about half of the windows fail) and merged."""
    folder = tmp_path_factory.mktemp("records")
    outputs = []
    for i in range(2):
        job = job_for(samples, folder, f"s{i}.trec")
        job.shard = f"{i}/8"
        run_rerank(job, backend=ScriptedBackend(fail=lambda query, texts: texts[0] < texts[-1]))
        outputs.append(job.output)
    merge_runs(outputs, str(folder / "merged.trec"))
    return folder, outputs


def test_journal_lines_read_back_byte_for_byte(shards):
    folder, outputs = shards
    lines = Path(outputs[0] + ".trace.jsonl").read_bytes().splitlines()
    assert orjson.dumps(JournalHeader.from_json(orjson.loads(lines[0])).to_json()) == lines[0]
    failed = 0
    for line in lines[1:]:
        record = WindowRecord.from_json(orjson.loads(line))
        assert orjson.dumps(record.to_json()) == line
        failed += record.failed
    assert failed and "error" in orjson.loads(next(line for line in lines if b'"failed":true' in line))
    journal = read_journal(outputs[0] + ".trace.jsonl")
    assert len(journal.records) == len(lines) - 1 and journal.torn is None
    assert journal.header == read_header(outputs[0] + ".trace.jsonl")


def test_manifests_read_back_byte_for_byte(shards):
    folder, outputs = shards
    for path in (outputs[0] + ".manifest.json", str(folder / "merged.trec.manifest.json")):
        data = Path(path).read_bytes()
        manifest = read_manifest(path)
        assert orjson.dumps(manifest.to_json(), option=orjson.OPT_INDENT_2) + b"\n" == data
    merged = read_manifest(str(folder / "merged.trec.manifest.json"))
    assert isinstance(merged, MergeManifest)
    assert merged.shards == tuple(ShardFiles(out, out + ".manifest.json", out + ".trace.jsonl") for out in outputs)
    first = read_manifest(outputs[0] + ".manifest.json")
    assert isinstance(first, RerankManifest) and first.summary.windows.failed > 0
    assert merged.windows is not None and merged.windows.total == sum(
        m.summary.windows.total for m in map(read_manifest, [o + ".manifest.json" for o in outputs])
        if isinstance(m, RerankManifest))


def test_older_files_without_newer_fields_still_read(shards, tmp_path):
    folder, outputs = shards
    merged = orjson.loads((folder / "merged.trec.manifest.json").read_bytes())
    del merged["shards"]
    old = tmp_path / "old.manifest.json"
    old.write_bytes(orjson.dumps(merged))
    manifest = read_manifest(str(old))
    assert isinstance(manifest, MergeManifest) and manifest.shards == tuple(ShardFiles(out) for out in outputs)
    lines = Path(outputs[0] + ".trace.jsonl").read_bytes().splitlines()
    header, window = orjson.loads(lines[0]), orjson.loads(lines[1])
    del header["settings"]["lora"], header["schema"], header["versions"]
    for key in ("max_chars", "backend_flags", "time", "finish_reason", "output"):
        del window[key]
    journal = tmp_path / "old.jsonl"
    journal.write_bytes(orjson.dumps(header) + b"\n" + orjson.dumps(window) + b"\n")
    read = read_journal(str(journal))
    assert read.header.settings.lora is None and read.header.prompt == "rearank"
    assert read.records[0].max_chars is None and read.records[0].docids == tuple(window["docids"])


def test_newer_or_malformed_records_are_one_input_error(shards, tmp_path):
    folder, outputs = shards
    data = orjson.loads(Path(outputs[0] + ".manifest.json").read_bytes())
    kind, _, version = SCHEMAS["rerank.manifest"].partition("/")
    data["schema"] = f"{kind}/{int(version) + 1}"
    newer = tmp_path / "newer.manifest.json"
    newer.write_bytes(orjson.dumps(data))
    with pytest.raises(InputError, match="newer than this rearank reads"):
        read_manifest(str(newer))
    lines = Path(outputs[0] + ".trace.jsonl").read_bytes().splitlines()
    window = orjson.loads(lines[1])
    window["permutation"] = window["permutation"][:-1]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(lines[0] + b"\n" + orjson.dumps(window) + b"\n")
    with pytest.raises(InputError, match="disagree") as caught:
        read_journal(str(bad))
    assert (caught.value.path, caught.value.line) == (str(bad), 2)
    del window["qid"]
    bad.write_bytes(lines[0] + b"\n" + orjson.dumps(window) + b"\n")
    with pytest.raises(InputError, match="without 'qid'"):
        read_journal(str(bad))
    bad.write_bytes(lines[0] + b"\n" + lines[1][:30])  # a torn last line is left out, not an error
    assert read_journal(str(bad)).torn == len(lines[0]) + 1
