"""`rearank rerank --dry-run`: the windows and prompt sizes a run would have, nothing sent or written; its
windows and prompt tokens against those of the real run that follows it (the tiny Qwen2 model, hf backend)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rearank_cli.formats import read_run
from rearank_cli.formats.candidates import read_candidates
from rearank_cli.rerank.dryrun import count_characters, dry_run, simulate
from rearank_cli.rerank.journal import read_journal
from rearank_cli.rerank.plan import QueryInput, RerankSettings

QIDS = ("264014", "1037798")


def small_run(samples: Path, out: Path, depth: int = 30) -> Path:
    """The first `depth` hits of two DL19 queries, as a TREC run."""
    lines = [line for line in (samples / "dl19-bm25-top100.trec").read_text().splitlines()
             if line.split()[0] in QIDS and int(line.split()[3]) <= depth]
    out.write_text("\n".join(lines) + "\n")
    return out


def dl19_queries(samples: Path, depth: int = 100) -> list[QueryInput]:
    candidates = read_candidates(str(samples / "dl19-bm25-top100.candidates.json.gz"))
    return [QueryInput(qid, candidates.topics[qid], hits[:depth], candidates.texts)
            for qid, hits in list(candidates.run.items())[:3]]


def test_sliding_windows_are_the_schedule(samples):
    settings = RerankSettings(prompt="rankgpt")
    plan = dry_run(dl19_queries(samples), settings)
    assert plan.unit == "characters" and plan.windows == 27 and plan.expected == 27
    first = plan.queries[0].windows[0]
    assert (first.window.start, first.window.end) == (80, 100)
    assert [(w.window.start, w.window.end) for w in plan.queries[0].windows][-1] == (0, 20)
    query = dl19_queries(samples)[0]
    messages = settings.prompt_spec.messages(query.query, [query.texts[d] for d in first.window.docids])
    assert first.size == count_characters(messages)


def test_tdpart_windows_and_its_estimate(samples):
    settings = RerankSettings(prompt="rankgpt", strategy="tdpart")
    queries = dl19_queries(samples)
    windows, expected = simulate(queries[0], settings)
    # the top window, then 80 docs in comparison windows of the pivot + 19 others; when every answer keeps
    # its order the pivot wins and no further window runs; the strategy's estimate adds a final window
    assert [w.pass_ for w in windows] == [0] * 6 and expected == 7
    assert dry_run(queries, settings).expected == 21


def test_dry_run_writes_nothing_and_counts_characters_without_a_model(cli, samples, tmp_path):
    out = tmp_path / "out.trec"
    result = cli("rerank", small_run(samples, tmp_path / "run.trec"), "--candidates",
                 samples / "dl19-bm25-top100.candidates.json.gz", "--prompt", "rankgpt", "--depth", "30",
                 "--model", "org/not-downloaded", "--dry-run", "-o", out)
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode()
    assert "prompt size: characters of the messages" in text
    assert "total: 2 queries, 4 windows" in text
    assert "at most 2048 per window (--max-tokens), 8192 in all" in text
    assert list(tmp_path.iterdir()) == [tmp_path / "run.trec"]


def test_dry_run_bad_input_exits_2(cli, samples, tmp_path):
    result = cli("rerank", tmp_path / "missing.trec", "--candidates", samples / "dl19-bm25-top100.candidates.json.gz",
                 "--dry-run", "-o", tmp_path / "out.trec")
    assert result.returncode == 2
    assert not (tmp_path / "out.trec").exists()


def planned_tokens(text: str) -> dict[str, list[int]]:
    """{qid: prompt tokens of each window} from the dry run's per-query lines."""
    rows = {}
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] in QIDS:
            rows[fields[0]] = [int(value) for value in fields[2:]]
            assert len(rows[fields[0]]) == int(fields[1])
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("prompt", ["rearank", "template"])
def test_dry_run_equals_the_real_run(cli, samples, tiny_model, tmp_path, prompt):
    if prompt == "template":
        prompt = str(Path(__file__).resolve().parents[1] / "fixtures" / "templates" / "rank_zephyr_template.yaml")
    run = small_run(samples, tmp_path / "run.trec")
    args = ["rerank", run, "--candidates", samples / "dl19-bm25-top100.candidates.json.gz", "--model", tiny_model,
            "--backend", "hf", "--prompt", prompt, "--depth", "30", "--window", "10", "--step", "5",
            "--max-tokens", "3", "-o", tmp_path / "out.trec"]
    dry = cli(*args, "--dry-run")
    assert dry.returncode == 0, dry.stderr.decode()
    assert "tokens of" in dry.stdout.decode() and not (tmp_path / "out.trec").exists()
    planned = planned_tokens(dry.stdout.decode())
    assert set(planned) == set(QIDS)

    real = cli(*args)
    assert real.returncode == 0, real.stderr.decode()
    journal = read_journal(str(tmp_path / "out.trec.trace.jsonl"))
    assert set(read_run(str(tmp_path / "out.trec"))) == set(QIDS)
    for qid in QIDS:
        records = sorted((r for r in journal.records if r.qid == qid), key=lambda r: (r.pass_, -r.start))
        assert len(records) == len(planned[qid]) == 5
        # the first window of each query holds the same passages whatever the model answers
        assert records[0].prompt_tokens == planned[qid][0]
        # a window whose passages the answers before it left in place has the planned prompt exactly
        same = [r for r in records if r.docids == _identity_docids(samples, qid, r.start, r.end)]
        assert all(r.prompt_tokens == planned[qid][records.index(r)] for r in same)
        # the tiny model answers 3 new tokens without an id, so every window kept its order: all compared
        assert len(same) == len(records), [r.output for r in records]


def _identity_docids(samples: Path, qid: str, start: int, end: int) -> tuple[str, ...]:
    hits = read_run(str(samples / "dl19-bm25-top100.trec"))[qid]
    return tuple(docid for docid, _ in hits[start:end])
