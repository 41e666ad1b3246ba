"""What `rearank train` shows while it runs and leaves behind: the per-step metrics, the progress bar, the plot;
and the base model of a `.gguf` file rebuilt as a folder TRL can train.

- `metrics.jsonl` (beside the model in OUT_DIR): one object per optimizer step with the fields of `METRIC_FIELDS`
  (`step`, `reward` = the mean weighted reward of the step's completions, `reward_std`, the mean of each reward
  part `rank`, `format`, `list`, `valid_format` = the share of completions with a full
  `<think>…</think><answer>…</answer>`, `completion_length` = mean tokens, `learning_rate`, plus `kl` and `loss`).
- A progress bar on stderr with the step's reward and the running mean of the last `RUNNING` steps.
- `metrics.png`: the curves of reward, its parts and valid format over the steps (matplotlib, Agg backend).

torch, transformers and matplotlib are imported inside functions only.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("rearank")

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "metrics.png"
#: the running reward of the progress bar is the mean over this many steps
RUNNING = 10
#: metrics.jsonl field -> the key of TRL's log dict it comes from
TRL_KEYS = {
    "reward": "reward",
    "reward_std": "reward_std",
    "rank": "rewards/rank_reward/mean",
    "format": "rewards/format_reward/mean",
    "list": "rewards/list_reward/mean",
    "valid_format": "rewards/format_reward/mean",
    "completion_length": "completions/mean_length",
    "learning_rate": "learning_rate",
    "kl": "kl",
    "loss": "loss",
}
METRIC_FIELDS = ("step", *TRL_KEYS)
#: the fields of the line logged per step, with their labels (TRL's reward function names)
SHOWN = (("reward", "reward"), ("rank", "rank_reward"), ("format", "format_reward"), ("list", "list_reward"),
         ("kl", "kl"), ("loss", "loss"))


def step_record(step: int, logs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The metrics.jsonl object of one optimizer step from TRL's log dict; None for a log without rewards
    (the end-of-training summary). A field TRL did not log (e.g. `kl` with --kl 0) is null."""
    if "reward" not in logs:
        return None
    record: dict[str, Any] = {"step": step}
    for field, key in TRL_KEYS.items():
        value = logs.get(key)
        record[field] = None if value is None or not math.isfinite(float(value)) else float(value)
    return record


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl."""
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def watch_callback(output: Path, total_steps: int) -> Any:
    """A TrainerCallback that appends each step's record to OUT_DIR/metrics.jsonl, and the whole TRL log dict
    to OUT_DIR/train_log.jsonl, moves a progress bar (stderr) with the reward and its running mean, logs one
    line per step, and draws OUT_DIR/metrics.png when training ends."""
    from tqdm import tqdm
    from transformers import TrainerCallback

    class Watch(TrainerCallback):
        def __init__(self) -> None:
            self.bar: Any = None
            self.recent: deque[float] = deque(maxlen=RUNNING)

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:  # transformers'
            if state.is_world_process_zero:
                self.bar = tqdm(total=total_steps, initial=state.global_step, desc="train", unit="step",
                                dynamic_ncols=True)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if not state.is_world_process_zero or not logs:
                return
            with open(output / "train_log.jsonl", "a", encoding="utf-8") as out:
                out.write(json.dumps({"step": state.global_step, **logs}) + "\n")
            record = step_record(state.global_step, logs)
            if record is None:
                return
            with open(output / METRICS_FILE, "a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
            self.recent.append(record["reward"])
            running = sum(self.recent) / len(self.recent)
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)
                self.bar.set_postfix(reward=f"{record['reward']:.3f}", running=f"{running:.3f}",
                                     valid=f"{record['valid_format']:.2f}", refresh=True)
            shown = " ".join(f"{label}={record[name]:.4f}" for name, label in SHOWN if record[name] is not None)
            log.info("step %d: %s (running reward %.4f)", state.global_step, shown, running)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.close()
            if state.is_world_process_zero and (output / METRICS_FILE).exists():
                plot_metrics(read_metrics(output / METRICS_FILE), output / PLOT_FILE)

    return Watch()


def plot_metrics(records: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """Draw the reward (with its spread and running mean), its parts and the valid-format share per step
    into a PNG (written atomically: a temporary file renamed into place)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    steps = [r["step"] for r in records]
    figure, (top, bottom) = pyplot.subplots(2, 1, figsize=(8, 6), sharex=True)
    reward = [r["reward"] for r in records]
    spread = [r["reward_std"] or 0.0 for r in records]
    top.plot(steps, reward, color="tab:blue", alpha=0.5, label="reward (mean of the step)")
    top.fill_between(steps, [m - s for m, s in zip(reward, spread, strict=True)],
                     [m + s for m, s in zip(reward, spread, strict=True)], color="tab:blue", alpha=0.1,
                     label="± std within the step")
    top.plot(steps, running_mean(reward, RUNNING), color="tab:blue", label=f"running mean ({RUNNING} steps)")
    top.set_ylabel("reward")
    top.legend(loc="best", fontsize="small")
    for field, color in (("rank", "tab:orange"), ("valid_format", "tab:green"), ("list", "tab:red")):
        values = [r[field] for r in records]
        bottom.plot(steps, running_mean(values, RUNNING), color=color, label=f"{field} (running mean)")
    bottom.set_xlabel("optimizer step")
    bottom.set_ylabel("mean per step")
    bottom.legend(loc="best", fontsize="small")
    figure.tight_layout()
    tmp = f"{path}.tmp.png"
    figure.savefig(tmp, dpi=100)
    pyplot.close(figure)
    os.replace(tmp, path)


def running_mean(values: Sequence[float | None], width: int) -> list[float]:
    """The mean of each value and the up to `width - 1` before it (None counts as 0)."""
    window: deque[float] = deque(maxlen=width)
    means = []
    for value in values:
        window.append(value or 0.0)
        means.append(sum(window) / len(window))
    return means


def rebuild_gguf(path: str, folder: Path) -> str:
    """Rebuild the model of a `.gguf` file as a transformers folder in `folder` (returned): a model loaded
    with `gguf_file=` cannot be trained and saved as it is, so its dequantized weights go into a fresh
    model built from its config (`from_config` + `load_state_dict`), saved in float32 with the tokenizer
    (the chat template included) that `rearank rerank --model GGUF` uses."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = os.path.split(os.path.abspath(path))
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantized: a plain model, trainable
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    model.load_state_dict(loaded.state_dict())
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return str(folder)
