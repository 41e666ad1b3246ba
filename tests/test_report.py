"""`rearank report` on real journals: the scripted backend reranks the DL19 sample candidates through
`run_rerank` (REARANK and RankGPT prompts), with adversarial text in a passage, a query and the model's
answers; the page is opened in a real headless Chromium (Debian's, driven by Playwright) and its
numbers are checked against `rearank eval` on the same files. A run reranked in two shards and joined
by `rearank merge` is reported with the windows of both shards' journals."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import html
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from rearank_cli.backends.base import Backend, BackendError, Generation
from rearank_cli.formats import read_candidates, read_qrels
from rearank_cli.jobs.rerank import RerankJob, run_rerank
from rearank_cli.prompts import clean_passage
from rearank_cli.rerank import RerankSettings
from tests.conftest import ROOT

pytest.importorskip("jinja2")
pytest.importorskip("matplotlib")

PASSAGE_XSS = "<script>alert(1)</script> and <img src=x onerror=alert(11)> in a passage"
ANSWER_XSS = "<script>alert(2)</script><img src=x onerror=alert(12)>"
QUERY_XSS = "<script>alert(3)</script> query"
DOCID_XSS = '"><svg/onload=alert(4)>'
PASSAGE_RE = re.compile(r"^\[(\d+)\] (.*)$", re.DOTALL)


class NoisyOracle(Backend):
    """Orders a window by qrels label plus a deterministic, text-keyed noise, writing reasoning for the
    REARANK prompt and a bare ranking for RankGPT's; a few windows answer badly on purpose."""

    name = "scripted"

    def __init__(self, labels: dict[str, int], rankgpt: bool = False) -> None:
        self.labels, self.rankgpt, self.calls = labels, rankgpt, 0

    async def agenerate(self, request):
        messages = request.messages
        self.calls += 1
        texts = [m.group(2) for m in (PASSAGE_RE.match(x["content"]) for x in messages if x["role"] == "user") if m]
        noise = [int(hashlib.sha256(t.encode()).hexdigest()[:4], 16) / 65536 * 1.6 for t in texts]
        order = sorted(range(len(texts)), key=lambda i: self.labels.get(texts[i], 0) + noise[i], reverse=True)
        ranking = " > ".join(f"[{i + 1}]" for i in order)
        if self.rankgpt:
            return Generation(ranking, prompt_tokens=50 * len(texts), completion_tokens=4 * len(texts))
        if self.calls == 3:
            raise BackendError("scripted failure")
        if self.calls % 7 == 0:  # duplicated and out-of-range ids, unclosed answer
            text = f"<think>{ANSWER_XSS} passage [1] looks best</think> <answer>[1] > [1] > [99] > {ranking}"
            return Generation(text, prompt_tokens=1000, completion_tokens=300, finish_reason="length")
        reason = f"<think>[{order[0] + 1}] answers the query directly; {ANSWER_XSS}</think>\n"
        return Generation(reason + f"<answer>{ranking}</answer>", prompt_tokens=900 + self.calls % 50,
                          completion_tokens=60 + (self.calls * 37) % 200, finish_reason="stop")


@pytest.fixture(scope="module")
def made(samples, tmp_path_factory):
    """DL19 candidates with adversarial text, a REARANK and a RankGPT run with journals and manifests."""
    folder = tmp_path_factory.mktemp("report")
    entries = orjson.loads(gzip.decompress((samples / "dl19-bm25-top100.candidates.json.gz").read_bytes()))
    for entry in entries:
        for hit in entry["hits"]:
            hit["qid"], hit["docid"] = str(hit["qid"]), str(hit["docid"])
    entries[0]["hits"][3]["content"] = PASSAGE_XSS
    entries[1]["query"] = QUERY_XSS
    entries[1]["hits"][0]["docid"] = DOCID_XSS
    candidates = folder / "cands.json.gz"
    candidates.write_bytes(gzip.compress(orjson.dumps(entries)))
    run = folder / "bm25.trec"
    run.write_text("".join(f"{h['qid']} Q0 {h['docid']} {r} {h['score']} bm25\n"
                           for e in entries for r, h in enumerate(e["hits"], 1)))
    qrels = read_qrels(str(samples / "dl19-qrels.txt"))
    judged = folder / "qrels.txt"  # three queries lose their judgments; the bad docid gets one
    dropped = [e["hits"][0]["qid"] for e in entries[-3:]]
    qrels[entries[1]["hits"][0]["qid"]][DOCID_XSS] = 2
    judged.write_text("".join(f"{q} 0 {d} {rel}\n" for q, docs in qrels.items() if q not in dropped
                              for d, rel in docs.items()))
    labels = {}
    for entry in entries:
        for hit in entry["hits"]:
            text = clean_passage(hit["content"], 400)
            labels[text] = max(labels.get(text, 0), qrels.get(hit["qid"], {}).get(hit["docid"], 0))
            labels[text[:300]] = labels[text]
    outs = {}
    for prompt in ("rearank", "rankgpt"):
        out = folder / f"{prompt}.trec"
        job = RerankJob(run=str(run), output=str(out), model=f"scripted-{prompt}", backend="scripted",
                        candidates=str(candidates), settings=RerankSettings(prompt=prompt))
        run_rerank(job, backend=NoisyOracle(labels, rankgpt=prompt == "rankgpt"))
        outs[prompt] = out
    return {"folder": folder, "run": run, "qrels": judged, "candidates": candidates, "dropped": dropped,
            "qids": [e["hits"][0]["qid"] for e in entries], "labels": labels, **outs}


def eval_json(cli, made, run, baseline=None):
    result = cli("eval", run, "--qrels", made["qrels"], "--baseline", baseline or made["run"], "--format", "json",
                 "--per-query")
    assert result.returncode == 0, result.stderr.decode()
    doc = orjson.loads(result.stdout)
    return {r["run"]: r for r in doc["runs"]}


def report(cli, made, *args, name="report.html"):
    out = made["folder"] / name
    result = cli("report", *map(str, args), "--qrels", made["qrels"], "-o", out)
    assert result.returncode == 0, result.stderr.decode()
    return out, out.read_text()


def test_report_escapes_untrusted_text_and_shows_every_window(cli, made):
    out, page = report(cli, made, made["rearank"])
    assert "<script>alert" not in page and "<img" not in page and "<svg/onload" not in page
    assert html.escape(ANSWER_XSS, quote=False) in page  # the model's answer, as text
    assert html.escape(QUERY_XSS, quote=False) in page
    assert page.count('<details class="query"') == len(made["qids"])
    header, *records = [orjson.loads(line) for line in Path(str(made["rearank"]) + ".trace.jsonl").read_bytes()
                        .splitlines()]
    assert page.count('<details class="window') == len(records) == 43 * 9
    assert page.count('<td class="ptext"') == 43 * 9 * 20 + 43 * 10
    for chart in ("delta-0", "scatter", "prompt_tokens", "completion_tokens", "latency", "tokens_delta"):
        assert f'id="chart-{chart}"><svg' in page
    assert not re.search(r'(?:src|href)\s*=\s*"?(?:https?:)?//', page)  # nothing fetched: no CDN
    assert "no qrels" in page and "scripted failure" in page
    summary = orjson.loads(Path(str(made["rearank"]) + ".manifest.json").read_bytes())["summary"]
    row = re.search(r'<table id="window-table">.*?<tr data-run="0">(.*?)</tr>', page, re.S).group(1)
    cells = re.findall(r'<td class="num">(\d+)</td>', row)
    windows = summary["windows"]
    assert cells[:4] == [str(windows["total"]), str(windows["failed"]), str(windows["shortened"]), "0"]
    assert cells[4] == str(windows["finish_length"]) and int(cells[4]) > 0 and windows["failed"] == 1
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(summary["parse_failures"].items()) if v)
    assert f'<td class="small">{kinds}</td>' in row and "duplicated_ids" in kinds
    assert out.stat().st_size < 6_000_000


def test_report_numbers_equal_eval(cli, made):
    _, page = report(cli, made, made["rearank"], made["rankgpt"], name="two.html")
    ours = eval_json(cli, made, made["rearank"])
    theirs = eval_json(cli, made, made["rankgpt"])
    base = ours[str(made["run"])]
    for number, result in enumerate([ours[str(made["rearank"])], theirs[str(made["rankgpt"])]]):
        row = re.search(rf'<tr data-run="{number}">(.*?)</tr>', page, re.S).group(1)
        shown = dict(re.findall(r'data-measure="([^"]+)">([0-9.]+)', row))
        assert shown == {m: f"{v:.4f}" for m, v in result["means"].items()}
        wtl = re.search(rf'<tr data-run="{number}" data-measure="nDCG@10">.*?class="num wtl">(\d+) / (\d+) / (\d+)',
                        page, re.S).groups()
        c = result["vs_baseline"]["nDCG@10"]
        assert tuple(map(int, wtl)) == (c["win"], c["tie"], c["loss"])
        values = re.findall(rf'data-run="{number}" data-value="([^"]+)"', page)
        expected = [f"{result['per_query'][q]['nDCG@10']:.4f}" if q in result["per_query"] else "–"
                    for q in made["qids"]]
        assert values == expected
    base_row = re.search(r'<tr data-run="baseline">(.*?)</tr>', page, re.S).group(1)
    assert dict(re.findall(r'data-measure="([^"]+)">([0-9.]+)', base_row)) == {
        m: f"{v:.4f}" for m, v in base["means"].items()}


def test_report_of_an_interrupted_run_rebuilds_what_finished(cli, made, tmp_path):
    lines = Path(str(made["rearank"]) + ".trace.jsonl").read_bytes().splitlines(keepends=True)
    kept = lines[:50]  # the header and 49 windows, then a torn line: what a killed job leaves
    cut = tmp_path / "cut.trec"
    Path(str(cut) + ".trace.jsonl").write_bytes(b"".join(kept) + lines[50][:40])
    out = tmp_path / "cut.html"  # no manifest either: the journal header names the first-stage run
    result = cli("report", cut, "--qrels", made["qrels"], "--candidates", made["candidates"], "-o", out)
    assert result.returncode == 0, result.stderr.decode()
    page = out.read_text()
    assert "(an interrupted job): rebuilt from the 49 finished window(s)" in page
    assert page.count('<details class="window') == 49 and "(unfinished)" in page
    windows = Counter(orjson.loads(line)["qid"] for line in kept[1:])
    finished = [qid for qid, count in windows.items() if count == 9]
    assert len(finished) >= 4
    values = dict(zip(made["qids"], re.findall(r'data-run="0" data-value="([^"]+)"', page), strict=True))
    evals = eval_json(cli, made, made["rearank"])
    full, base = evals[str(made["rearank"])]["per_query"], evals[str(made["run"])]["per_query"]
    for qid in made["qids"]:
        expected = full if qid in finished else base if qid not in windows else None
        if expected is not None and qid not in made["dropped"]:
            assert values[qid] == f"{expected[qid]['nDCG@10']:.4f}", qid
    assert not cut.exists()  # nothing is written next to the inputs


def test_report_without_trace_shows_the_effect_only(cli, made, samples, tmp_path):
    run = tmp_path / "plain.trec"
    shutil.copy(made["rankgpt"], run)
    out = tmp_path / "plain.html"
    result = cli("report", run, "--qrels", made["qrels"], "--baseline", made["run"], "-o", out)
    assert result.returncode == 0, result.stderr.decode()
    page = out.read_text()
    assert "No trace: only the effect" in page and '<details class="window' not in page
    assert 'id="chart-delta-0"><svg' in page and page.count('<details class="query"') == len(made["qids"])


def test_report_bad_input_is_one_line_exit_2(cli, made, tmp_path):
    missing = cli("report", tmp_path / "nope.trec", "--qrels", made["qrels"], "-o", tmp_path / "x.html")
    assert missing.returncode == 2 and missing.stderr.decode().count("\n") == 1, missing.stderr
    assert "nope.trec" in missing.stderr.decode()
    both = cli("report", made["rearank"], "--qrels", made["qrels"], "--candidates", made["candidates"],
               "--topics", "t.tsv", "-o", tmp_path / "x.html")
    assert both.returncode == 2
    bad = tmp_path / "bad.trec"
    shutil.copy(made["rearank"], bad)
    Path(str(bad) + ".trace.jsonl").write_text('{"type": "header"}\n{not json}\n')
    broken = cli("report", bad, "--qrels", made["qrels"], "-o", tmp_path / "x.html")
    assert broken.returncode == 2 and "bad.trec.trace.jsonl:2" in broken.stderr.decode()
    assert not (tmp_path / "x.html").exists()


def test_missing_jinja2_is_a_one_line_hint(monkeypatch, capsys):
    from rearank_cli.cli import run as rearank_run

    monkeypatch.setitem(sys.modules, "jinja2", None)
    assert rearank_run(["report", "x.trec", "--qrels", "q", "-o", "/nonexistent/x.html"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pip install -e '{ROOT}[report]'" in err[0], err


def test_help_does_not_import_the_report_libraries():
    import subprocess

    code = ("import sys\nfrom rearank_cli.cli import run\nassert run(['--help']) == 0\n"
            "assert not {'jinja2', 'matplotlib'} & set(sys.modules), 'heavy import'\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# ---------------------------------------------------------------- a run merged from shards


@pytest.fixture(scope="module")
def sharded(cli, made):
    """The SLURM workflow: `rerank --shard 0/2` and `--shard 1/2` (each its own scripted backend, as two
    array tasks would run), then `rearank merge` of the shard outputs."""
    folder = made["folder"] / "shards"
    folder.mkdir()
    outputs = []
    for i in range(2):
        out = folder / f"s{i}.trec"
        job = RerankJob(run=str(made["run"]), output=str(out), model="scripted-rearank", backend="scripted",
                        candidates=str(made["candidates"]), shard=f"{i}/2")
        run_rerank(job, backend=NoisyOracle(made["labels"]))
        outputs.append(out)
    merged = made["folder"] / "merged.trec"
    result = cli("merge", *outputs, "--expect", made["run"], "-o", merged)
    assert result.returncode == 0, result.stderr.decode()
    records = [orjson.loads(line) for out in outputs
               for line in Path(f"{out}.trace.jsonl").read_bytes().splitlines()[1:]]
    return {"merged": merged, "outputs": outputs, "records": records}


def test_report_of_a_merged_run_finds_every_shard_journal(cli, made, sharded):
    _, page = report(cli, made, sharded["merged"], name="merged.html")
    records = sharded["records"]
    assert {r["qid"] for r in records} == set(made["qids"]) and len(records) == 43 * 9
    assert page.count('<details class="query"') == len(made["qids"])
    assert page.count('<details class="window') == len(records)
    for number, qid in enumerate(made["qids"]):  # every query shows its own 9 windows
        section = re.search(rf'<details class="query[^"]*" id="q-{number}".*?(?=<details class="query|</main>|$)',
                            page, re.S).group(0)
        assert section.count('<details class="window') == 9, qid
    assert "windows from the 2 journals of its shards" in page and "merged from 2 shards" in page
    assert "No trace" not in page
    ours = eval_json(cli, made, sharded["merged"])[str(sharded["merged"])]
    values = re.findall(r'data-run="0" data-value="([^"]+)"', page)
    assert values == [f"{ours['per_query'][q]['nDCG@10']:.4f}" if q in ours["per_query"] else "–"
                      for q in made["qids"]]
    row = re.search(r'<tr data-run="0">(.*?)</tr>', page, re.S).group(1)
    assert dict(re.findall(r'data-measure="([^"]+)">([0-9.]+)', row)) == {
        m: f"{v:.4f}" for m, v in ours["means"].items()}
    # the journals given with repeated --trace instead: the same windows
    traces = [arg for out in sharded["outputs"] for arg in ("--trace", f"{out}.trace.jsonl")]
    _, given = report(cli, made, sharded["merged"], *traces, name="merged-traces.html")
    assert given.count('<details class="window') == len(records)
    # journals of shards reranked with other settings are refused
    other = made["folder"] / "other.trace.jsonl"
    lines = Path(f"{sharded['outputs'][1]}.trace.jsonl").read_bytes().splitlines(keepends=True)
    header = orjson.loads(lines[0])
    header["settings"]["window"] = 10
    other.write_bytes(orjson.dumps(header) + b"\n" + b"".join(lines[1:]))
    bad = cli("report", sharded["merged"], "--trace", f"{sharded['outputs'][0]}.trace.jsonl", "--trace", other,
              "--qrels", made["qrels"], "-o", made["folder"] / "bad.html")
    assert bad.returncode == 2 and "window 20 -> 10" in bad.stderr.decode(), bad.stderr


def test_report_of_one_shard_counts_the_queries_it_reranked(cli, made, sharded):
    """A shard's run against the full qrels: "N of M judged queries reranked", not M queries."""
    shard = sharded["outputs"][0]
    judged = set(read_qrels(str(made["qrels"])))
    reranked = {line.split()[0] for line in shard.read_text().splitlines()} & judged
    assert 0 < len(reranked) < len(judged)
    _, page = report(cli, made, shard, name="shard.html")
    assert f"({len(reranked)} of {len(judged)} judged queries reranked, relevance level 1)" in page
    _, full = report(cli, made, sharded["merged"], name="merged-count.html")
    assert f"({len(judged)} queries, relevance level 1)" in full and "judged queries reranked" not in full


# ---------------------------------------------------------------- in a real browser


def chromium_path() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("no chromium on PATH (scripts/install_chromium.sh installs Debian's)")
    pytest.importorskip("playwright.sync_api", reason="playwright is in the [test] extra")
    return found


@contextlib.contextmanager
def browser_page(problems: list[str]):
    """A page of Debian's headless Chromium; console errors, page errors and dialogs go to `problems`."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
            yield page
        finally:
            browser.close()


@pytest.mark.slow
def test_report_in_headless_chromium(cli, made):
    chromium_path()
    out, _ = report(cli, made, made["rearank"], made["rankgpt"], name="browser.html")
    ours = eval_json(cli, made, made["rearank"])[str(made["rearank"])]
    problems: list[str] = []
    with browser_page(problems) as page:
        page.goto(out.as_uri())
        page.screenshot(path=str(made["folder"] / "report-top.png"))
        assert page.locator("details.query").count() == len(made["qids"])
        for chart in ("delta-0", "delta-1", "scatter", "prompt_tokens", "completion_tokens", "latency",
                      "tokens_delta"):
            assert page.locator(f"#chart-{chart} svg").count() == 1, chart
        cells = page.locator("#measure-table tr[data-run='0'] td[data-measure='nDCG@10']").inner_text()
        assert cells.startswith(f"{ours['means']['nDCG@10']:.4f}")
        # a bar of the delta chart opens its query
        page.locator("#chart-delta-0 svg a").first.click()
        target = page.evaluate("location.hash")
        assert page.evaluate(f"document.getElementById('{target[1:]}').open")
        # open every query: passages are filled in as text, nothing from the data runs
        page.evaluate("document.querySelectorAll('details.query').forEach(function (d) { d.open = true; })")
        page.wait_for_function("document.querySelectorAll('details.query[data-filled]').length === "
                               f"{len(made['qids'])}")
        texts = page.evaluate("Array.from(document.querySelectorAll('td.ptext'), function (c) "
                              "{ return c.textContent; })")
        assert len(texts) == 2 * 43 * (9 * 20 + 10)
        assert any(PASSAGE_XSS[:60] in text for text in texts)
        assert "(no text)" not in texts and "" not in texts
        assert page.evaluate("document.querySelectorAll('img, iframe, object').length") == 0
        assert page.evaluate("document.scripts.length") == 2  # the page's data block and its script
        assert ANSWER_XSS in page.evaluate("document.querySelector('pre.output').textContent")
        page.fill("#search", made["qids"][5])
        assert page.locator("details.query:not(.hidden)").count() >= 1
        assert page.locator("#shown").inner_text().endswith(f"of {len(made['qids'])} queries")
        page.fill("#search", "")
        page.evaluate("document.querySelectorAll('details.query').forEach(function (d) { d.open = false; })")
        page.evaluate("location.hash = '#q-0'")  # the query whose passage carries a script tag
        page.wait_for_function("document.getElementById('q-0').open")
        page.locator("#q-0 details.window").nth(8).evaluate("function (d) { d.open = true; }")
        page.screenshot(path=str(made["folder"] / "report-query.png"))
        page.locator("#q-0 details.window").nth(8).screenshot(path=str(made["folder"] / "report-window.png"))
    assert problems == []


@pytest.mark.slow
def test_report_of_a_merged_run_in_headless_chromium(cli, made, sharded):
    chromium_path()
    out, _ = report(cli, made, sharded["merged"], name="merged-browser.html")
    ours = eval_json(cli, made, sharded["merged"])[str(sharded["merged"])]
    problems: list[str] = []
    with browser_page(problems) as page:
        page.goto(out.as_uri())
        assert page.locator("details.query").count() == len(made["qids"])
        cells = page.locator("#measure-table tr[data-run='0'] td[data-measure='nDCG@10']").inner_text()
        assert cells.startswith(f"{ours['means']['nDCG@10']:.4f}")
        shown = page.evaluate("Array.from(document.querySelectorAll('details.query'), function (q) "
                              "{ return q.querySelectorAll('details.window').length; })")
        assert shown == [9] * len(made["qids"])  # the windows of both shards' queries
        page.evaluate("document.querySelectorAll('details.query').forEach(function (d) { d.open = true; })")
        page.wait_for_function("document.querySelectorAll('details.query[data-filled]').length === "
                               f"{len(made['qids'])}")
        texts = page.evaluate("Array.from(document.querySelectorAll('td.ptext'), function (c) "
                              "{ return c.textContent; })")
        assert len(texts) == 43 * (9 * 20 + 10) and "(no text)" not in texts and "" not in texts
        for chart in ("delta-0", "scatter", "prompt_tokens", "completion_tokens", "latency", "tokens_delta"):
            assert page.locator(f"#chart-{chart} svg").count() == 1, chart
    assert problems == []


def test_report_of_a_tdpart_run_replays_its_rounds(cli, made, tmp_path):
    """A tdpart journal is replayed round by round: every window shown with its round, the journal's
    order equals the run's (no mismatch warning), and a cut journal rebuilds the finished queries."""
    labels = {}
    out = tmp_path / "tdpart.trec"
    for line in made["qrels"].read_text().splitlines():
        qid, _, docid, rel = line.split()
        labels[(qid, docid)] = int(rel)
    candidates = read_candidates(str(made["candidates"]))
    texts = {clean_passage(candidates.texts[d], 400): labels.get((q, d), 0)
             for q, hits in candidates.run.items() for d, _ in hits}
    job = RerankJob(run=str(made["run"]), output=str(out), model="scripted-tdpart", backend="scripted",
                    candidates=str(made["candidates"]), settings=RerankSettings(strategy="tdpart"))
    manifest = run_rerank(job, backend=NoisyOracle(texts)).to_json()
    lines = Path(f"{out}.trace.jsonl").read_bytes().splitlines(keepends=True)
    assert len(lines) - 1 == manifest["summary"]["windows"]["total"] < 43 * 9
    result = cli("report", out, "--qrels", made["qrels"], "-o", tmp_path / "td.html")
    assert result.returncode == 0, result.stderr.decode()
    page = (tmp_path / "td.html").read_text()
    assert "another first-stage run or another trace" not in page
    assert page.count('<details class="window') == len(lines) - 1
    assert "(round 1, top window)" in page and "(round 1, comparison with the pivot 5)" in page
    assert "(round 2, top window)" in page and "strategy tdpart" in page
    cut = tmp_path / "cut.trec"
    Path(f"{cut}.trace.jsonl").write_bytes(b"".join(lines[:60]))
    result = cli("report", cut, "--qrels", made["qrels"], "--candidates", made["candidates"], "-o", tmp_path / "c.html")
    assert result.returncode == 0, result.stderr.decode()
    page = (tmp_path / "c.html").read_text()
    assert "rebuilt from the 59 finished window(s)" in page and "(unfinished)" in page
    assert page.count('<details class="window') == 59
