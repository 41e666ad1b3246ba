"""`rearank rerank --dry-run`: what the run would ask of the model, printed; nothing is sent, no backend is
loaded, and no output, journal or manifest is written.

The inputs are read and checked as a run reads them (bad input exits 2). Prompt sizes are tokens of the
model's tokenizer with its chat template applied, counted as the hf backend counts them, when `--model`'s
files are on disk (a folder, a `.gguf` file, or the Hugging Face cache); otherwise characters, and the
output says so. The windows come from `rerank.dryrun` (every answer keeping its window's order).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any

from rearank_cli.api import with_tokenizer
from rearank_cli.backends.base import Message, template_args
from rearank_cli.jobs.context import JobContext
from rearank_cli.jobs.rerank import RerankJob, check_model_files, job_of
from rearank_cli.rerank.dryrun import Counter, DryRun, dry_run
from rearank_cli.rerank.inputs import parse_shard, stream_inputs
from rearank_cli.settings.rerank import RerankOptions

log = logging.getLogger("rearank")


def run(options: RerankOptions, context: JobContext) -> DryRun:
    """`rearank rerank --dry-run`: print what the run `options` describe would ask (windows, prompt tokens,
    the bound on generated tokens); nothing is loaded, sent or written."""
    return run_dry(job_of(options, context))


def run_dry(job: RerankJob, out: IO[str] | None = None) -> DryRun:
    """Plan `job` without a model and print the plan to `out` (stdout); returns it."""
    job.check()
    check_model_files(job, load=False)
    inputs = stream_inputs(job.run, job.topics, job.corpus, job.candidates, depth=job.settings.depth,
                           prompt=job.settings.prompt, shard=parse_shard(job.shard), skip_missing=job.skip_missing)
    try:
        settings = with_tokenizer(job.settings, job.model)
        counter = token_counter(job)
        if counter is None:
            plan = dry_run(inputs.queries(), settings)
            note = f"characters of the messages (no tokenizer on disk for --model {job.model})"
        else:
            count, context, source = counter
            plan = dry_run(inputs.queries(), settings, count, context)
            note = f"tokens of {source}'s tokenizer, chat template applied"
    finally:
        inputs.close()
    (out or sys.stdout).write("\n".join(plan_lines(plan, job, note)) + "\n")
    return plan


def model_files(model: str) -> tuple[str, dict[str, Any]] | None:
    """(folder, extra `from_pretrained` kwargs) of a model whose files are on disk, without asking the hub;
    None otherwise."""
    path = os.path.expanduser(model)
    if os.path.isdir(path):
        return path, {}
    if os.path.isfile(path) and path.endswith(".gguf"):
        folder, name = os.path.split(os.path.abspath(path))
        return folder, {"gguf_file": name}
    from rearank_cli.model_check import REPO_ID_RE, cached_snapshot

    if REPO_ID_RE.match(model):
        snapshot = cached_snapshot(model)
        if snapshot is not None:
            return snapshot, {}
    return None


def token_counter(job: RerankJob) -> tuple[Counter, int | None, str] | None:
    """(count, the model's context in tokens, what counts) from `--model`'s tokenizer, or None when its
    files are not on disk, transformers is missing or the tokenizer has no chat template."""
    found = model_files(job.model)
    if found is None:
        return None
    try:
        import transformers
    except ImportError:
        return None
    folder, extra = found
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, **extra)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("cannot load the tokenizer of %s (%s): counting characters", job.model, exc)
        return None
    if not getattr(tokenizer, "chat_template", None):
        log.warning("the tokenizer of %s has no chat template: counting characters", job.model)
        return None

    def count(messages: Sequence[Message], chat_template_kwargs: Mapping[str, Any] | None = None) -> int:
        """Tokens after the chat template, as the hf backend counts them (`count_prompt_tokens`)."""
        text = tokenizer.apply_chat_template(list(messages), tokenize=False,
                                             **template_args(messages, chat_template_kwargs))
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count, model_context(job, found, tokenizer), job.model


def model_context(job: RerankJob, found: tuple[str, dict[str, Any]], tokenizer: Any) -> int | None:
    """The context a run of `job` fits its prompts into: `--max-model-len` (vllm), else what the hf backend
    reads from the model's config and tokenizer; None for openai (the server says it only when asked)."""
    if job.backend == "openai":
        return None
    given = job.backend_options.get("max_model_len")
    if given:
        return int(given)
    import transformers

    from rearank_cli.model_check import context_length

    folder, extra = found
    try:
        config = transformers.AutoConfig.from_pretrained(folder, **extra)
    except (OSError, ValueError, KeyError):
        return None
    return context_length(config, tokenizer)


def plan_lines(plan: DryRun, job: RerankJob, note: str) -> list[str]:
    """The plan as readable lines: settings, one line per query, the totals."""
    settings = job.settings
    unit = plan.unit
    lines = [f"dry run: nothing sent, nothing written; prompt {settings.prompt}, strategy {settings.strategy}, "
             f"window {settings.window}, depth {settings.depth}",
             f"prompt size: {note}",
             f"{'qid':<12} {'windows':>7}  prompt {unit} per window"]
    for query in plan.queries:
        sizes = " ".join(str(window.size) for window in query.windows)
        lines.append(f"{query.qid:<12} {len(query.windows):>7}  {sizes}")
    windows = plan.windows
    mean = plan.size // windows if windows else 0
    lines.append(f"total: {len(plan.queries)} queries, {windows} windows, {plan.size} prompt {unit} "
                 f"(mean {mean}, largest {plan.largest()} per window)")
    if plan.expected != windows:
        lines.append(f"windows expected by the strategy before any answer: {plan.expected} (later rounds "
                     "depend on the answers; the windows above assume every answer keeps its window's order)")
    lines.append(f"generated tokens: at most {plan.max_tokens} per window (--max-tokens), "
                 f"{windows * plan.max_tokens} in all")
    return lines
