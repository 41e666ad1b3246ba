"""RankLLM template files (`--prompt FILE.yaml`) against what castorini/rank_llm's own code renders and parses.

The reference is `tests/fixtures/templates/rankllm_reference.json.gz`, made by running rank_llm's inference
handlers and `receive_permutation` (commit 1b3cabb) on real DL19 windows and answers (`make_fixture.py`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from rearank_cli.backends.base import Backend, Generation
from rearank_cli.errors import InputError
from rearank_cli.formats import read_run
from rearank_cli.jobs.rerank import RerankJob, run_rerank
from rearank_cli.prompts import answer_tags, get_family, passage_chars
from rearank_cli.prompts.rankllm import FAKE_DIGITS, answer_ids, fix_text
from rearank_cli.prompts.template import is_template_path, read_template
from rearank_cli.rerank.plan import RerankSettings

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "templates"
CANDIDATES = ROOT / "sample_runs" / "dl19-bm25-top100.candidates.json.gz"


@pytest.fixture(scope="module")
def reference() -> dict:
    with gzip.open(FIXTURES / "rankllm_reference.json.gz", "rt", encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def dl19() -> dict[str, dict]:
    with gzip.open(CANDIDATES, "rt", encoding="utf-8") as handle:
        entries = json.load(handle)
    return {str(entry["hits"][0]["qid"]): entry for entry in entries}


def test_fixture_templates_are_the_committed_files(reference):
    for name, sha256 in reference["templates"].items():
        assert hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest() == sha256


def test_messages_equal_rank_llm_on_dl19_windows(reference, dl19):
    checked = set()
    for row in reference["windows"]:
        params = {"passage_limit": row["max_passage_words"], "use_alpha": row["use_alpha"]}
        family = read_template(str(FIXTURES / row["template"])).bind(params)
        entry = dl19[row["qid"]]
        texts = [hit["content"] for hit in entry["hits"][row["start"]:row["end"]]]
        assert family.messages(entry["query"], texts) == row["messages"], (row["template"], row["qid"])
        checked.add(row["template"])
    assert len(checked) == 5 and len(reference["windows"]) == 120


def test_the_windows_exercise_ftfy_and_the_word_cut(reference, dl19):
    """The fixture's windows are not trivial: ftfy repairs DL19 passages in them, and 12 words cut them."""
    entry = dl19[reference["windows"][0]["qid"]]
    texts = [hit["content"] for hit in entry["hits"]]
    assert any(fix_text(text) != text for text in texts)
    family = read_template(str(FIXTURES / "rank_zephyr_template.yaml"))
    assert family.clean(texts[0]) != family.bind({"passage_limit": 12}).clean(texts[0])


def test_rank_llm_local_path_mends_nothing_more_on_these_windows(reference):
    """RankLLM's in-process vLLM path passes the chat-templated prompt through ftfy once more; a chat template
    opening with `<` makes that `fix_text(..., unescape_html=False)` of each message, which changes none of
    these windows: both of RankLLM's paths send the messages compared above."""
    from ftfy import fix_text as ftfy_fix_text

    for row in reference["windows"]:
        for message in row["messages"]:
            assert ftfy_fix_text(message["content"], unescape_html=False) == message["content"]


def test_parser_agrees_with_rank_llm(reference):
    answers = reference["answers"]
    assert len(answers) >= 30
    family = read_template(str(FIXTURES / "rank_zephyr_template.yaml"))
    for row in answers:
        order, flags = family.bind({"use_alpha": row["use_alpha"]}).parse(row["answer"], row["size"])
        assert order == row["order"], row["answer"][:80]
        assert sorted(order) == list(range(row["size"]))


def test_letters_need_use_alpha(reference):
    alpha = [row for row in reference["answers"] if row["use_alpha"]]
    assert len(alpha) >= 10
    family = read_template(str(FIXTURES / "rank_zephyr_alpha_template.yaml"))
    assert family.parse("[B] > [A]", 2)[0] == [0, 1]  # numbers are read without use_alpha, as in RankLLM
    lettered = family.bind({"use_alpha": True})
    assert lettered.parse("[B] > [A]", 2)[0] == [1, 0] and lettered.recovery_regex(2) is None
    assert "[B] second" in lettered.messages("q", ["first", "second"])[-1]["content"]


def test_every_fake_digit_is_in_the_reference_answers(reference):
    seen = "".join(row["answer"] for row in reference["answers"])
    assert set(FAKE_DIGITS) <= set(seen)


def test_parser_flags():
    family = read_template(str(FIXTURES / "rank_zephyr_template.yaml"))
    order, flags = family.parse("<think>[3]</think> [2] > [2] > [9]", 3)
    assert order == [1, 0, 2]
    assert (flags.ids_found, flags.duplicated, flags.out_of_range, flags.missing) == (3, 1, 1, 2)
    assert flags.think_closed and not flags.answer_closed
    assert answer_ids("[፫] > [1]") is None


def test_family_by_path_and_its_hash():
    path = str(FIXTURES / "qwen_thinking_template.yaml")
    family = get_family(path)
    assert family.name == path
    assert family.hash == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert family.bind({"passage_limit": 50}).hash != family.hash
    assert is_template_path("x.yml") and is_template_path(path) and not is_template_path("rankgpt")


def test_records_naming_a_template_file_read_it():
    """The report asks what a journal's prompt asked for: a template file says no answer tags."""
    path = str(FIXTURES / "rank_zephyr_template.yaml")
    assert answer_tags(path) is False and passage_chars(path) == 4000
    assert answer_tags("gone.yaml") is True and passage_chars("gone.yaml") == 400  # a record's defaults


def test_rearank_keys(tmp_path):
    text = (FIXTURES / "rank_zephyr_template.yaml").read_text()
    path = tmp_path / "t.yaml"
    path.write_text(text + "rearank:\n  passage_unit: characters\n  passage_limit: 10\n  answer_tags: true\n"
                    "  enable_thinking: true\n  max_tokens: 99\n")
    family = read_template(str(path))
    assert family.clean("  [12] abcdefghijklmnop") == "(12) abcde"
    assert family.answer_tags and family.chat_template_kwargs == {"enable_thinking": True}
    assert family.decoding.max_tokens == 99
    request = family.request("q", ["a", "b"])
    assert request.answer_regex is not None and request.chat_template_kwargs == {"enable_thinking": True}


@pytest.mark.parametrize(("body", "message"), [
    ('method: "pointwise"\nbody: "Query: {query} Document: {doc_content}"\n',
     "method: 'pointwise' is not a listwise method rearank runs"),
    ('method: "rankfid"\ntext: "{query}"\n', "method: 'rankfid' is not a listwise method"),
    ('method: "singleturn_listwise"\nprefix: "{query} {foo}"\nbody: "[{rank}] {candidate}"\n'
     'output_validation_regex: x\noutput_extraction_regex: y\n', "prefix: unknown placeholder {foo}"),
    ('method: "singleturn_listwise"\nprefix: "{query}"\nbody: "[{rank}]"\n'
     'output_validation_regex: x\noutput_extraction_regex: y\n', "body: placeholder {candidate} missing"),
    ('method: "singleturn_listwise"\nprefix: "{query}"\nbody: "[{rank}] {candidate}"\n',
     "output_validation_regex: missing"),
    ('method: "singleturn_listwise"\nprefix: "x"\nbody: "[{rank}] {candidate}"\n'
     'output_validation_regex: x\noutput_extraction_regex: y\n', "placeholder {query} missing"),
    ('method: "singleturn_listwise"\nbody: "[{rank}] {candidate}"\nbody_user: "x"\n'
     'output_validation_regex: x\noutput_extraction_regex: y\n', "body_user: not a key"),
    ('method: "singleturn_listwise"\nbody: "[{rank}] {candidate}"\nrearank:\n  passage_unit: lines\n'
     'output_validation_regex: x\noutput_extraction_regex: y\n', "rearank.passage_unit: 'lines' is not one of"),
    ("- a\n- b\n", "a prompt template is a YAML mapping"),
    ("method: [\n", "not a YAML file"),
])
def test_refused_templates(tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(InputError) as caught:
        read_template(str(path))
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(path)) or "bad.yaml" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_score_placeholder_is_refused_with_its_line():
    with pytest.raises(InputError) as caught:
        read_template(str(FIXTURES / "insert_rank_template.yaml"))
    assert "insert_rank_template.yaml:8: body: unknown placeholder {score}" in str(caught.value)


class FirstLast(Backend):
    """Answers every window with its last passage first (RankLLM's answer format), counting the windows."""

    name = "scripted"

    def __init__(self):
        self.windows = 0

    async def agenerate(self, request):
        self.windows += 1
        size = request.window_size
        order = [size] + list(range(1, size))
        return Generation(text="<think>ok</think>\n" + " > ".join(f"[{i}]" for i in order), prompt_tokens=1,
                          completion_tokens=1, finish_reason="stop")


def test_rerank_with_a_template_file_journal_manifest_and_resume(tmp_path):
    template = tmp_path / "zephyr.yaml"
    template.write_bytes((FIXTURES / "rank_zephyr_template.yaml").read_bytes())
    def job(resume: bool = False) -> RerankJob:
        return RerankJob(run=str(ROOT / "sample_runs" / "dl19-bm25-top100.trec"), output=str(tmp_path / "out.trec"),
                         model="scripted", backend="scripted", candidates=str(CANDIDATES), shard="0/20",
                         settings=RerankSettings(prompt=str(template), depth=30), resume=resume)

    first = job()
    backend = FirstLast()
    manifest = run_rerank(first, backend=backend).to_json()
    sha256 = hashlib.sha256(template.read_bytes()).hexdigest()
    assert manifest["prompt"] == str(template) and manifest["prompt_hash"] == sha256
    header = json.loads(Path(first.trace_path()).read_text().splitlines()[0])
    assert header["settings"]["prompt"] == str(template) and header["settings"]["prompt_hash"] == sha256
    run = read_run(first.output)
    first_stage = read_run(str(ROOT / "sample_runs" / "dl19-bm25-top100.trec"))
    qid = next(iter(run))
    # two windows: 11-30 puts the 30th doc at 11, which pushes the 19th to 20; then 1-20 puts that one first
    assert [docid for docid, _ in run[qid]][:3] == [first_stage[qid][i][0] for i in (18, 0, 1)]
    assert [docid for docid, _ in run[qid]][11] == first_stage[qid][29][0]  # 11th, then one lower
    assert backend.windows == 2 * len(run)

    assert run_rerank(job(resume=True), backend=FirstLast()).summary.windows.replayed == backend.windows
    template.write_text(template.read_text().replace("RankLLM", "RankLLM!"))
    with pytest.raises(InputError, match="prompt_hash"):
        run_rerank(job(resume=True), backend=FirstLast())


@pytest.mark.parametrize("name", ["insert_rank_template.yaml", "missing.yaml"])
def test_rerank_refuses_a_bad_template_at_start(capsys, tmp_path, name):
    from rearank_cli.cli import run

    out = tmp_path / "out.trec"
    code = run(["rerank", str(ROOT / "sample_runs" / "dl19-bm25-top100.trec"), "--candidates", str(CANDIDATES),
                "--prompt", str(FIXTURES / name), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and name in err
    assert list(tmp_path.iterdir()) == []


def test_context_size_loop_equals_rank_llm(reference, dl19, tiny_model, tmp_path):
    """`rearank: context_size` takes words off the passages as RankLLM's `create_prompt` does for a local model
    until the chat-templated prompt and the answer fit; the reference ran it with the tiny model's tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    rows = reference["fitted"]
    assert len(rows) == 4
    for row in rows:
        path = tmp_path / f"{row['context_size']}-{row['template']}"
        own = f"\nrearank:\n  context_size: {row['context_size']}\n"
        path.write_text((FIXTURES / row["template"]).read_text() + own)
        family = read_template(str(path)).bind(tokenizer=tokenizer)
        entry = dl19[row["qid"]]
        texts = [hit["content"] for hit in entry["hits"][row["start"]:row["end"]]]
        messages = family.messages(entry["query"], texts)
        prompt = fix_text(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        assert prompt == row["prompt"] and len(tokenizer.encode(prompt)) == row["prompt_tokens"]
        whole = read_template(str(FIXTURES / row["template"])).messages(entry["query"], texts)
        assert messages != whole  # the loop did cut: the window does not fit at 300 words
