"""Runs inside a VeRL virtualenv (not the project's): VeRL's own loaders, dataset and reward manager.

Started by tests/test_verl.py with that venv's python; reads a JSON job file and prints one JSON object
on stdout. Nothing here computes a reward itself: every number comes out of VeRL's code calling rearank's
entry point, and the test compares it with values computed by hand from the labels.

    python tests/verl_checks.py loader JOB.json   # get_custom_reward_fn of the VeRL on sys.path
    python tests/verl_checks.py full JOB.json     # config validation, RLHFDataset, reward manager

A loader job: {"paths": reward modules (file or pkg://), "cases": [{solution_str, ground_truth}]}.
A full job adds "config_yaml" (the launch script's config, composed by VeRL's Hydra), "parquet",
"tokenizer", "max_prompt_length" and "responses": [{"index": extra_info.index of the row, "text": response}].
"""

from __future__ import annotations

import importlib.util
import json
import sys
from typing import Any


def reward_config(path: str) -> Any:
    """A config holding the reward module under both keys: VeRL <= 0.7 reads the top-level
    `custom_reward_function`, VeRL >= 0.8 `reward.custom_reward_function`."""
    from omegaconf import OmegaConf

    section = {"path": path, "name": "compute_score", "reward_kwargs": {}}
    return OmegaConf.create({"custom_reward_function": section, "reward": {"custom_reward_function": section}})


def loader(job: dict) -> dict:
    """Load the reward through VeRL's get_custom_reward_fn from each of `paths` and call it on each case.

    A path VeRL refuses gives {"error": "<exception type>: <message>"} instead of scores.
    """
    rearank_importable = importlib.util.find_spec("rearank_cli") is not None
    import verl
    from verl.trainer.ppo.reward import get_custom_reward_fn

    results = {}
    for path in job["paths"]:
        try:
            fn = get_custom_reward_fn(reward_config(path))
        except Exception as exc:  # reported to the test, which decides whether this version may refuse
            results[path] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        results[path] = {"scores": [fn(data_source="rearank", solution_str=c["solution_str"],
                                       ground_truth=c["ground_truth"], extra_info={}) for c in job["cases"]]}
    return {"version": verl.__version__, "verl_file": verl.__file__, "rearank_importable": rearank_importable,
            "results": results}


def check_config(config_yaml: str) -> dict:
    """VeRL's own validation of the composed launch config (what main_ppo runs before starting Ray)."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    config = OmegaConf.create(config_yaml)
    use_ref, use_critic = need_reference_policy(config), need_critic(config)
    validate_config(config=config, use_reference_policy=use_ref, use_critic=use_critic)
    rollout = omega_conf_to_dataclass(config.actor_rollout_ref.rollout)
    actor = omega_conf_to_dataclass(config.actor_rollout_ref.actor)
    algorithm = omega_conf_to_dataclass(config.algorithm)
    reward = config.reward  # read as a DictConfig by VeRL's reward loop (its dataclass does not build alone)
    return {
        "use_reference_policy": use_ref,
        "use_critic": use_critic,
        "n": rollout.n,
        "temperature": rollout.temperature,
        "prompt_length": rollout.prompt_length,
        "response_length": rollout.response_length,
        "lr": actor.optim.lr,
        "lr_scheduler_type": actor.optim.lr_scheduler_type,
        "warmup_ratio": actor.optim.lr_warmup_steps_ratio,
        "clip_ratio": actor.clip_ratio,
        "use_kl_loss": actor.use_kl_loss,
        "kl_loss_coef": actor.kl_loss_coef,
        "kl_loss_type": actor.kl_loss_type,
        "ppo_mini_batch_size": actor.ppo_mini_batch_size,
        "adv_estimator": str(getattr(algorithm.adv_estimator, "value", algorithm.adv_estimator)),
        "use_kl_in_reward": algorithm.use_kl_in_reward,
        "reward_path": reward.custom_reward_function.path,
        "reward_name": reward.custom_reward_function.name,
        "train_batch_size": config.data.train_batch_size,
        "max_prompt_length": config.data.max_prompt_length,
        "filter_overlong_prompts": config.data.filter_overlong_prompts,
    }


def load_dataset(job: dict, config: Any, tokenizer: Any) -> Any:
    """VeRL's RLHFDataset on augment's parquet, through create_rl_dataset as the trainer builds it."""
    from omegaconf import open_dict
    from verl.trainer.ppo.utils import create_rl_dataset

    data = config.data
    with open_dict(data):
        data.max_prompt_length = job["max_prompt_length"]
        data.filter_overlong_prompts_workers = 1
    return create_rl_dataset([job["parquet"]], data, tokenizer, None, is_train=True)


def batch_of(items: list[dict], texts: list[str], tokenizer: Any) -> Any:
    """A DataProto as the rollout hands it to the reward loop: prompts, right-padded responses, masks."""
    import torch
    from verl import DataProto
    from verl.utils.dataset.rl_dataset import collate_fn

    batch = collate_fn(items)
    pad = tokenizer.pad_token_id
    responses = [tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                 for text in texts]
    width = max(len(ids) for ids in responses)
    response_ids = torch.full((len(items), width), pad, dtype=torch.long)
    response_mask = torch.zeros((len(items), width), dtype=torch.long)
    for i, ids in enumerate(responses):
        response_ids[i, : len(ids)] = torch.tensor(ids)
        response_mask[i, : len(ids)] = 1
    prompts = torch.full((len(items), 4), pad, dtype=torch.long)  # only its width is read by the reward
    batch.update(prompts=prompts, responses=response_ids,
                 attention_mask=torch.cat([torch.ones_like(prompts), response_mask], dim=1))
    return DataProto.from_single_dict(batch)


def run_reward_manager(config: Any, tokenizer: Any, data: Any) -> list[dict]:
    """VeRL's configured reward manager (naive) on each response, as the reward loop worker runs it."""
    from verl.trainer.ppo.reward import load_reward_manager

    manager = load_reward_manager(config, tokenizer)
    results = []
    for i in range(len(data)):
        out = manager.loop.run_until_complete(manager.run_single(data[i : i + 1]))
        extra = {key: float(value) for key, value in out["reward_extra_info"].items()
                 if key in ("score", "rank", "format", "list", "r_rerank")}
        results.append({"reward_score": float(out["reward_score"]), "extra": extra,
                        "manager": type(manager).__name__})
    return results


def full(job: dict) -> dict:
    """Config validation, dataset and reward manager of the installed VeRL (0.8+ layout)."""
    from omegaconf import OmegaConf, open_dict
    from verl.utils import hf_tokenizer

    result = {"config": check_config(job["config_yaml"])}
    config = OmegaConf.create(job["config_yaml"])
    with open_dict(config):
        config.actor_rollout_ref.model.path = job["tokenizer"]
    tokenizer = hf_tokenizer(job["tokenizer"])
    dataset = load_dataset(job, config, tokenizer)
    items = [dataset[i] for i in range(len(dataset))]
    result["dataset"] = {
        "class": type(dataset).__name__,
        "len": len(dataset),
        "rows": [{"index": item["index"], "data_source": item["data_source"], "raw_prompt": item["raw_prompt"],
                  "ground_truth": item["reward_model"]["ground_truth"], "qid": item["extra_info"]["qid"]}
                 for item in items],
    }
    by_index = {item["index"]: item for item in items}
    responses = job["responses"]
    data = batch_of([by_index[r["index"]] for r in responses], [r["text"] for r in responses], tokenizer)
    result["rewards"] = run_reward_manager(config, tokenizer, data)
    return result


def main() -> None:
    """`verl_checks.py loader|full JOB.json`: print the JSON result."""
    mode, job_path = sys.argv[1], sys.argv[2]
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    result = loader(job) if mode == "loader" else full(job)
    sys.stdout.flush()
    print("VERL_CHECKS_JSON " + json.dumps(result, default=str))


if __name__ == "__main__":
    main()
