#!/bin/bash
# GRPO training of a REARANK reranker on SLURM: N nodes x 8 GPUs, DeepSpeed ZeRO-3 (or FSDP2),
# vLLM rollouts colocated on the training GPUs. Requeued jobs resume from the newest checkpoint.
#
#   sbatch --nodes=2 scripts/slurm_train.sh rearank_train.jsonl qrels.txt rearank-grpo
#
# Environment knobs: BASE (base model), ACCEL (accelerate config), GPUS (per node), EXTRA (more
# `rearank train` flags, e.g. "--lora --lora-r 16" or "--config configs/train.toml").
#SBATCH --job-name=rearank-grpo
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=48:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@300
#SBATCH --output=%x-%j.log
set -euo pipefail

TRAIN=${1:?usage: slurm_train.sh TRAIN.jsonl QRELS OUT_DIR}
QRELS=${2:?usage: slurm_train.sh TRAIN.jsonl QRELS OUT_DIR}
OUT=${3:?usage: slurm_train.sh TRAIN.jsonl QRELS OUT_DIR}
BASE=${BASE:-Qwen/Qwen2.5-7B-Instruct}
ACCEL=${ACCEL:-configs/accelerate/zero3.yaml}
GPUS=${GPUS:-8}
EXTRA=${EXTRA:-}

MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=${MASTER_PORT:-29500}
NNODES=${SLURM_NNODES:-1}

# On preemption notice, requeue; the relaunched job resumes from OUT/checkpoint-N (--resume-from auto).
trap 'scontrol requeue "$SLURM_JOB_ID"' USR1

# One launcher per node; each starts GPUS training processes (WORLD_SIZE = NNODES x GPUS). Defaults of
# `rearank train` are the paper's: group 32, 128 prompts per step, lr 1e-6, KL 0.01 (k3), clip 0.2.
srun --kill-on-bad-exit=1 bash -c "
  accelerate launch --config_file '$ACCEL' \
    --num_machines $NNODES --num_processes $((NNODES * GPUS)) \
    --machine_rank \$SLURM_NODEID --main_process_ip $MASTER_ADDR --main_process_port $MASTER_PORT \
    -m rearank_cli train '$TRAIN' --model '$BASE' --qrels '$QRELS' -o '$OUT' \
      --use-vllm --vllm-mode colocate --save-steps 20 --resume-from auto $EXTRA
" &
wait
