"""`rearank prompt list | show | render`: the families, one family, the exact messages of one window."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rearank_cli.cli import run
from rearank_cli.prompts import family_names, get_family
from rearank_cli.rerank.dryrun import simulate
from rearank_cli.rerank.plan import QueryInput, RerankSettings

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_runs"
TEMPLATES = ROOT / "tests" / "fixtures" / "templates"
RUN = str(SAMPLES / "dl19-bm25-top100.trec")
CANDIDATES = str(SAMPLES / "dl19-bm25-top100.candidates.json.gz")


def prompt(capsys, *args: str) -> tuple[int, str, str]:
    code = run(["prompt", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_names_every_family(capsys):
    code, out, _ = prompt(capsys, "list")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines() if not line.startswith("(")]
    assert names == list(family_names())
    code, out, _ = prompt(capsys, "list", "--format", "json")
    assert [item["name"] for item in json.loads(out)] == list(family_names())


def test_show_a_family_and_a_template_file(capsys):
    code, out, _ = prompt(capsys, "show", "rankgpt", "--format", "json")
    shown = json.loads(out)
    family = get_family("rankgpt")
    assert code == 0 and shown["hash"] == family.hash and shown["answer_tags"] is False
    assert shown["example"] == family.messages("{query}", ["{passage 1}", "{passage 2}"])
    path = str(TEMPLATES / "rank_gpt_template.yaml")
    code, out, _ = prompt(capsys, "show", path)
    assert code == 0 and "cut to 300 words" in out and "--- assistant ---\nReceived passage [2]." in out


@pytest.mark.parametrize("family", ["rearank", str(TEMPLATES / "qwen_thinking_template.yaml")])
def test_render_prints_the_messages_of_the_window(capsys, family):
    code, out, _ = prompt(capsys, "render", RUN, "--candidates", CANDIDATES, "--prompt", family, "--query",
                          "1037798", "--window-index", "3", "--format", "json")
    assert code == 0
    shown = json.loads(out)
    from rearank_cli.formats.candidates import read_candidates

    candidates = read_candidates(CANDIDATES)
    query = QueryInput("1037798", candidates.topics["1037798"], candidates.run["1037798"], candidates.texts)
    window = simulate(query, RerankSettings(prompt=family))[0][3]
    assert shown["window"]["docids"] == list(window.docids) and (window.start, window.end) == (50, 70)
    texts = [candidates.texts[docid] for docid in window.docids]
    assert shown["messages"] == get_family(family).messages(query.query, texts)
    code, text, _ = prompt(capsys, "render", RUN, "--candidates", CANDIDATES, "--prompt", family, "--query",
                           "1037798", "--window-index", "3")
    assert text.startswith("query 1037798, window 3 (positions 51-70, pass 0)")
    assert shown["messages"][-1]["content"] in text


@pytest.mark.parametrize(("args", "message"), [
    (["show", "nope"], "'nope' is not one of"),
    (["show", str(TEMPLATES / "insert_rank_template.yaml")], "body: unknown placeholder {score}"),
    (["show"], "needs a family's NAME"),
    (["render", RUN, "--candidates", CANDIDATES, "--window-index", "9"], "has 9 window(s)"),
    (["render", RUN, "--candidates", CANDIDATES, "--query", "42"], "query '42' is not in the run"),
    (["render", "--topics", str(SAMPLES / "dl19-topics.tsv")], "needs a RUN"),
    (["render", RUN, "--candidates", CANDIDATES, "--prompt", "missing.yaml"], "missing.yaml: cannot read"),
])
def test_bad_input_exits_2_with_one_line(capsys, args, message):
    code, out, err = prompt(capsys, *args)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1
