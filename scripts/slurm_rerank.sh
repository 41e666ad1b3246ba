#!/bin/bash
# `rearank rerank` as a SLURM array: task I of --array=0-(N-1) reranks shard I/N of RUN into
# OUT_DIR/I.trec, resuming from its journal (OUT_DIR/I.trec.trace.jsonl) whenever it starts again.
# Near the time limit (the USR1 warning below) it stops rerank cleanly and requeues its own task, so a
# long shard finishes over several allocations; preemption and `scontrol requeue` resume the same way.
#
#   sbatch --array=0-7 --gres=gpu:1 scripts/slurm_rerank.sh bm25.trec shards \
#       --topics topics.tsv --corpus corpus.jsonl.gz
#   sbatch --dependency=afterany:<array job id> --wrap "rearank merge shards/*.trec --expect bm25.trec -o rr.trec"
#
# Everything after OUT_DIR goes to `rearank rerank` as is. Environment: REARANK_VENV (virtual environment;
# default: the .venv of this repository), SHARDS (N; default: the array's task count).
# Exit status: rerank's (0 ok, 2 bad input, 3 some windows failed, 143 stopped by SIGTERM), or 0 after a
# requeue near the time limit.
#SBATCH --job-name=rearank-rerank
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=4
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@120
#SBATCH --open-mode=append
#SBATCH --output=%x-%A_%a.log
set -euo pipefail

usage="usage: sbatch --array=0-(N-1) slurm_rerank.sh RUN OUT_DIR [rearank rerank options]"
# sbatch runs a copy of this script from the node's spool folder; the job's Command is the original's
# path followed by the arguments.
cmd=$(scontrol show job "${SLURM_JOB_ID:?submit with sbatch}" | sed -n 's/^ *Command=//p' | head -n 1)
REARANK_HOME=${REARANK_HOME:-$(cd "$(dirname "${cmd% "$*"}")/.." && pwd)}
# shellcheck source=slurm_common.sh
source "$REARANK_HOME/scripts/slurm_common.sh"

[ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
RUN=$1
OUT_DIR=$2
shift 2
if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then
  echo "error: not an array task; $usage" >&2
  exit 2
fi
SHARDS=${SHARDS:-${SLURM_ARRAY_TASK_COUNT:-}}
if [ "${SLURM_ARRAY_TASK_MIN:-0}" != 0 ] || [ "$SLURM_ARRAY_TASK_ID" -ge "$SHARDS" ]; then
  echo "error: array task $SLURM_ARRAY_TASK_ID is not in 0-$((SHARDS - 1)); $usage" >&2
  exit 2
fi

rearank_activate
mkdir -p "$OUT_DIR"
echo "slurm: task $SLURM_ARRAY_TASK_ID/$SHARDS, job $SLURM_JOB_ID, start ${SLURM_RESTART_COUNT:-0}" >&2
status=0
rearank_run_requeueable rearank rerank "$RUN" --shard "$SLURM_ARRAY_TASK_ID/$SHARDS" --resume \
  -o "$OUT_DIR/$SLURM_ARRAY_TASK_ID.trec" "$@" || status=$?
exit "$status"
