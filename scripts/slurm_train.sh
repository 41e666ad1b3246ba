#!/bin/bash
# GRPO training of a REARANK reranker on SLURM: N nodes x 8 GPUs, FSDP2 by default (DeepSpeed ZeRO-3
# with ACCEL=configs/accelerate/zero3.yaml after `pip install deepspeed`), vLLM rollouts colocated on the
# training GPUs. Near the time limit (the USR1 warning below) the job requeues itself; every start
# resumes from the newest OUT_DIR/checkpoint-N (--resume-from auto). Preemption resumes the same way.
#
#   sbatch --nodes=2 scripts/slurm_train.sh rearank_train.jsonl qrels.txt rearank-grpo
#
# Environment knobs: REARANK_VENV (virtual environment; default: the .venv of this repository), BASE
# (base model), ACCEL (accelerate config; default: configs/accelerate/fsdp2.yaml of this repository),
# GPUS (per node), EXTRA (more `rearank train` flags, e.g. "--lora --lora-r 16" or
# "--config configs/train.toml"). The job's exit status is the training's (0 after a requeue).
#SBATCH --job-name=rearank-grpo
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=48:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@300
#SBATCH --open-mode=append
#SBATCH --output=%x-%j.log
set -euo pipefail

usage="usage: sbatch slurm_train.sh TRAIN.jsonl QRELS OUT_DIR"
# sbatch runs a copy of this script from the node's spool folder; the job's Command is the original's
# path followed by the arguments.
cmd=$(scontrol show job "${SLURM_JOB_ID:?submit with sbatch}" | sed -n 's/^ *Command=//p' | head -n 1)
REARANK_HOME=${REARANK_HOME:-$(cd "$(dirname "${cmd% "$*"}")/.." && pwd)}
# shellcheck source=slurm_common.sh
source "$REARANK_HOME/scripts/slurm_common.sh"

[ $# -eq 3 ] || { echo "$usage" >&2; exit 2; }
TRAIN=$1
QRELS=$2
OUT=$3
BASE=${BASE:-Qwen/Qwen2.5-7B-Instruct}
ACCEL=${ACCEL:-$REARANK_HOME/configs/accelerate/fsdp2.yaml}
GPUS=${GPUS:-8}
EXTRA=${EXTRA:-}

rearank_activate
if ! command -v accelerate >/dev/null; then
  echo "error: no accelerate in the environment: install the train extra (pip install -e '.[train]')" >&2
  exit 2
fi
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=${MASTER_PORT:-29500}
NNODES=${SLURM_NNODES:-1}

# One launcher per node; each starts GPUS training processes (WORLD_SIZE = NNODES x GPUS). Defaults of
# `rearank train` are the paper's: group 32, 128 prompts per step, lr 1e-6, KL 0.01 (k3), clip 0.2.
# shellcheck disable=SC2086  # EXTRA is split into flags on purpose
status=0
rearank_run_requeueable srun --kill-on-bad-exit=1 bash -c '
  accelerate launch --config_file "$1" --num_machines "$2" --num_processes "$3" --machine_rank "$SLURM_NODEID" \
    --main_process_ip "$4" --main_process_port "$5" -m rearank_cli train "${@:6}"
' launcher "$ACCEL" "$NNODES" "$((NNODES * GPUS))" "$MASTER_ADDR" "$MASTER_PORT" \
  "$TRAIN" --model "$BASE" --qrels "$QRELS" -o "$OUT" \
  --use-vllm --vllm-mode colocate --save-steps 20 --resume-from auto $EXTRA || status=$?
exit "$status"
