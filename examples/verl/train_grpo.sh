#!/usr/bin/env bash
# REARANK GRPO with VeRL's PPO trainer (`python -m verl.trainer.main_ppo`), the paper's settings (spec
# section 8), on the parquet of `rearank augment --format parquet` and rearank's reward.
# Written for and checked against VeRL 0.9.1 (its Hydra schema; keys moved between releases, see docs/verl.md).
#
#   TRAIN_FILES=rearank_train.parquet bash examples/verl/train_grpo.sh           # one node, 8 GPUs
#   sbatch --nodes=2 examples/verl/slurm_ray.sbatch                               # SLURM, N nodes x 8 GPUs
#   bash examples/verl/train_grpo.sh --cfg job --resolve    # print the composed config, start nothing
#
# Environment knobs (defaults in brackets):
#   TRAIN_FILES  augment's parquet [rearank_train.parquet]
#   VAL_FILES    parquet for VeRL's validation loop [$TRAIN_FILES]; the loop is off (see trainer.* below)
#   MODEL        base model [Qwen/Qwen2.5-7B-Instruct]
#   REWARD       reward module [pkg://rearank_cli.reward] (rearank installed in this Python, e.g.
#                `pip install --no-deps /path/to/rearank`); or the file path /path/to/rearank_cli/reward.py
#   NNODES, GPUS_PER_NODE [1, 8]; STEPS [160]; SAVE_FREQ [20]; OUT [checkpoints/rearank-grpo]
#   PYTHON       the VeRL environment's python [python3]
# Further Hydra overrides given as arguments are appended (the last one of a key wins).
set -euo pipefail

TRAIN_FILES=${TRAIN_FILES:-rearank_train.parquet}
VAL_FILES=${VAL_FILES:-$TRAIN_FILES}
MODEL=${MODEL:-Qwen/Qwen2.5-7B-Instruct}
REWARD=${REWARD:-pkg://rearank_cli.reward}
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
STEPS=${STEPS:-160}
SAVE_FREQ=${SAVE_FREQ:-20}
OUT=${OUT:-checkpoints/rearank-grpo}
PYTHON=${PYTHON:-python3}

# Every key below is commented: "(default X)" is VeRL 0.9.1's value when it differs; "= default" keys are
# the paper's value already and are stated so that a change of VeRL's default cannot move them.
overrides=(
  # --- algorithm: GRPO ---
  algorithm.adv_estimator=grpo                      # (default gae: PPO with a critic) group mean/std advantage, no critic
  algorithm.norm_adv_by_std_in_grpo=True            # = default: divide by the group's std (GRPO)
  algorithm.use_kl_in_reward=False                  # = default: the paper puts KL in the loss, not the reward

  # --- data: augment's parquet ---
  data.train_files="$TRAIN_FILES"                   # (default ~/data/rlhf/gsm8k/train.parquet)
  data.val_files="$VAL_FILES"                       # (default ~/data/rlhf/gsm8k/test.parquet) required by the trainer
  data.prompt_key=prompt                            # = default: augment writes the chat messages in `prompt`
  data.reward_fn_key=data_source                    # = default: augment writes data_source "rearank"
  data.train_batch_size=128                         # (default 1024) 128 prompts per step
  data.max_prompt_length=3072                       # (default 512, which would cut every REARANK prompt) <= 3072 tokens
  data.filter_overlong_prompts=True                 # (default False: longer prompts cut from the left) drop them
  data.truncation=error                             # = default: nothing left to truncate after the filter
  data.max_response_length=2048                     # (default 512) responses <= 2048 tokens

  # --- policy model and optimizer ---
  actor_rollout_ref.model.path="$MODEL"             # (default ~/models/deepseek-llm-7b-chat)
  actor_rollout_ref.model.enable_gradient_checkpointing=True  # = default: 4,096 sequences of ~5k tokens per step
  actor_rollout_ref.actor.optim.lr=1e-6             # = default: lr 1e-6
  actor_rollout_ref.actor.optim.lr_scheduler_type=constant  # = default: constant
  actor_rollout_ref.actor.optim.lr_warmup_steps_ratio=0.0   # = default: no warmup
  actor_rollout_ref.actor.ppo_mini_batch_size=128   # (default 256 > the 128 prompts of a step) one update per step
  actor_rollout_ref.actor.ppo_epochs=1              # = default: each rollout batch is used once
  actor_rollout_ref.actor.use_dynamic_bsz=True      # (default False, which needs ppo_micro_batch_size_per_gpu) pack
                                                    #   micro-batches by tokens, as the prompt lengths vary a lot
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384   # = default: >= 3072 + 2048, the longest sequence

  # --- loss: clip 0.2, KL 0.01 with k3 in the loss, token mean ---
  actor_rollout_ref.actor.clip_ratio=0.2            # = default: PPO clip 0.2
  actor_rollout_ref.actor.use_kl_loss=True          # (default False) KL to the reference model in the loss
  actor_rollout_ref.actor.kl_loss_coef=0.01         # (default 0.001) KL coefficient 0.01
  actor_rollout_ref.actor.kl_loss_type=low_var_kl   # = default: the low-variance k3 estimator
  actor_rollout_ref.actor.entropy_coeff=0           # = default: no entropy bonus
  actor_rollout_ref.actor.loss_agg_mode=token-mean  # = default: mean over all tokens of the step

  # --- rollouts: vLLM, 32 samples per prompt at temperature 1 ---
  actor_rollout_ref.rollout.name=vllm               # (no default: required) the rollout engine
  actor_rollout_ref.rollout.n=32                    # (default 1) group size 32
  actor_rollout_ref.rollout.temperature=1.0         # = default: temperature 1.0
  actor_rollout_ref.rollout.top_p=1                 # = default: no nucleus cut
  actor_rollout_ref.rollout.top_k=-1                # = default: no top-k cut

  # --- reward: rearank's, from the parquet's ground truth ---
  reward.custom_reward_function.path="$REWARD"      # (default null: VeRL's built-in scorers) rearank's reward;
                                                    #   VeRL <= 0.7 reads the top-level custom_reward_function.*
  reward.custom_reward_function.name=compute_score  # = default: rearank_cli.reward.compute_score
  reward.reward_manager.name=naive                  # = default: one compute_score call per response

  # --- trainer ---
  trainer.nnodes="$NNODES"                          # = default 1 on one node; the node count on SLURM
  trainer.n_gpus_per_node="$GPUS_PER_NODE"          # = default 8
  trainer.total_training_steps="$STEPS"             # (default null: 30 epochs) the paper trained ~120-160 steps
  trainer.save_freq="$SAVE_FREQ"                    # (default -1: never) a checkpoint every 20 steps
  trainer.default_local_dir="$OUT"                  # (default checkpoints/verl_examples/gsm8k)
  trainer.val_before_train=False                    # (default True) rearank evaluates with `rearank rerank` +
  trainer.test_freq=-1                              # = default: `rearank eval` on TREC sets, not VeRL's loop
  trainer.logger='["console"]'                      # (default console + wandb, which needs an account)
  trainer.project_name=rearank                      # (default verl_examples)
  trainer.experiment_name=rearank-grpo              # (default gsm8k)
)

exec "$PYTHON" -m verl.trainer.main_ppo "${overrides[@]}" "$@"
