"""`rearank prompt` as a job: list the prompt families, show one, or print the messages of one window of a
run exactly as the backend would get them (nothing is sent, nothing written but stdout)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import IO, Any

from rearank_cli.api import with_tokenizer
from rearank_cli.backends.base import Message
from rearank_cli.errors import InputError
from rearank_cli.jobs.context import JobContext
from rearank_cli.prompts import PromptFamily, families, get_family
from rearank_cli.prompts.template import TemplateFamily
from rearank_cli.rerank.dryrun import simulate
from rearank_cli.rerank.inputs import parse_shard, stream_inputs
from rearank_cli.rerank.plan import RerankSettings
from rearank_cli.settings.prompt import PromptOptions

#: the passage texts `show` fills an example window with
EXAMPLE_QUERY = "{query}"
EXAMPLE_PASSAGES = ("{passage 1}", "{passage 2}")


def run(options: PromptOptions, context: JobContext) -> None:
    """`rearank prompt`: list the families, show one, or print one window's messages (stdout)."""
    run_prompt(options)


def run_prompt(options: PromptOptions, out: IO[str] | None = None) -> None:
    """Do what `options.action` says and print it to `out` (stdout)."""
    out = out or sys.stdout
    if options.action == "list":
        out.write(list_families(options.fmt))
    elif options.action == "show":
        out.write(show_family(str(options.target), options.fmt))
    else:
        out.write(render_window(options))


def list_families(fmt: str) -> str:
    """The registered families, one line each (name and summary), or a JSON list."""
    found = families()
    if fmt == "json":
        return json.dumps([{"name": family.name, "summary": family.summary} for family in found], indent=1) + "\n"
    width = max(len(family.name) for family in found)
    lines = [f"{family.name:<{width}}  {family.summary}" for family in found]
    lines.append("(or a RankLLM template file: --prompt FILE.yaml; see docs/templates.md)")
    return "\n".join(lines) + "\n"


def describe(family: PromptFamily) -> dict[str, Any]:
    """What a family declares, as JSON: name, hash, passage cut, answer tags, decoding defaults, its
    parameters, and the messages of an example window of two passages."""
    decoding = family.decoding
    return {
        "name": family.name, "summary": family.summary, "hash": family.hash, "answer_tags": family.answer_tags,
        "passage_chars": family.passage_chars, "needs_tokenizer": family.needs_tokenizer,
        "chat_template_kwargs": dict(family.chat_template_kwargs),
        "decoding": {"max_tokens": decoding.max_tokens, "temperature": decoding.temperature,
                     "top_p": decoding.top_p},
        "params": family.param_values(),
        "example": None if family.needs_tokenizer else family.messages(EXAMPLE_QUERY, list(EXAMPLE_PASSAGES)),
    }


def show_family(name: str, fmt: str) -> str:
    """One family (a name, or a template file) as JSON or readable text."""
    family = get_family(name)
    info = describe(family)
    if fmt == "json":
        return json.dumps(info, indent=1, ensure_ascii=False) + "\n"
    lines = [f"{info['name']}: {info['summary']}", f"hash: {info['hash']}",
             f"answer tags: {'yes' if info['answer_tags'] else 'no'}",
             f"passages: {passage_rule(family)}",
             "decoding defaults: " + ", ".join(f"{key} {value}" for key, value in info["decoding"].items())]
    if info["chat_template_kwargs"]:
        lines.append(f"chat template: {json.dumps(info['chat_template_kwargs'])}")
    if info["params"]:
        lines.append("parameters: " + ", ".join(f"{key}={value}" for key, value in info["params"].items()))
    text = "\n".join(lines) + "\n"
    if info["example"] is not None:
        text += "\nA window of two passages:\n\n" + readable(info["example"])
    return text


def passage_rule(family: PromptFamily) -> str:
    """How the family cuts a passage, in words."""
    if isinstance(family, TemplateFamily):
        return (f"repaired by ftfy, cut to {family.limit} {family.own.passage_unit}, [n] made (n) "
                "(as RankLLM cleans them)")
    if family.needs_tokenizer:
        return "cut by tokens of the model's tokenizer"
    return f"at most {family.passage_chars} characters"


def render_window(options: PromptOptions) -> str:
    """The messages of window `--window-index` of query `--query` (the run's first by default)."""
    settings = RerankSettings(prompt=options.prompt, window=options.window, step=options.step,
                              depth=options.depth, window_schedule=options.window_schedule,
                              strategy=options.strategy,
                              prompt_params=get_family(options.prompt).parse_params(options.prompt_params))
    settings.check()
    if options.target is None and options.candidates is None:
        raise InputError("rearank prompt render needs a RUN (or --candidates, whose lists then define the run)")
    inputs = stream_inputs(options.target, options.topics, options.corpus, options.candidates, depth=options.depth,
                           prompt=options.prompt, shard=parse_shard(None))
    try:
        qid = options.query or (inputs.qids[0] if inputs.qids else None)
        if qid is None or qid not in inputs.qids:
            raise InputError(f"query {qid!r} is not in the run" if qid else "the run has no query")
        query = inputs.query(qid)
    finally:
        inputs.close()
    windows, _ = simulate(query, settings)
    if not 0 <= options.window_index < len(windows):
        raise InputError(f"--window-index {options.window_index}: query {qid} has {len(windows)} window(s)")
    window = windows[options.window_index]
    family = with_tokenizer(settings, options.model).prompt_spec
    messages = family.messages(query.query, [query.texts[docid] for docid in window.docids])
    if options.fmt == "json":
        record = {"qid": qid, "query": query.query, "prompt": family.name, "prompt_hash": family.hash,
                  "window": {"pass": window.pass_, "index": window.index, "start": window.start, "end": window.end,
                             "docids": list(window.docids)},
                  "chat_template_kwargs": dict(family.chat_template_kwargs), "messages": messages}
        return json.dumps(record, indent=1, ensure_ascii=False) + "\n"
    head = (f"query {qid}, window {options.window_index} (positions {window.start + 1}-{window.end}, "
            f"pass {window.pass_}), prompt {family.name}\n\n")
    return head + readable(messages)


def readable(messages: Sequence[Message]) -> str:
    """Messages as text: each under a `--- role ---` line."""
    return "".join(f"--- {message['role']} ---\n{message['content']}\n" for message in messages)
