# Shared by scripts/slurm_rerank.sh and scripts/slurm_train.sh: sourced, never run on its own.
# Expects REARANK_HOME (the repository) to be set by the sourcing script.

# Activates the environment: REARANK_VENV (a virtual environment folder) when set, else the repository's
# .venv when there is one, else whatever `rearank` is already on PATH. Exits 2 when there is none.
rearank_activate() {
  local venv=${REARANK_VENV:-$REARANK_HOME/.venv}
  if [ -f "$venv/bin/activate" ]; then
    # shellcheck disable=SC1091
    source "$venv/bin/activate"
  elif [ -n "${REARANK_VENV:-}" ]; then
    echo "error: REARANK_VENV=$REARANK_VENV is not a virtual environment (no bin/activate)" >&2
    exit 2
  fi
  if ! command -v rearank >/dev/null; then
    echo "error: no rearank: run scripts/setup.sh in $REARANK_HOME or set REARANK_VENV" >&2
    exit 2
  fi
}

# Runs "$@" in the background and waits for it, so that the shell can take signals meanwhile.
# SIGUSR1 (the time-limit warning of `#SBATCH --signal=B:USR1@SECONDS`, or `scancel --batch
# --signal=USR1`) sends the command SIGTERM, waits for it to stop and, unless it had finished with status
# 0, requeues this job (an array task requeues only itself): the next allocation resumes the work.
# SIGTERM to the shell is noted and the shell goes on waiting: SLURM sends SIGTERM to every process of
# the job (time limit, preemption, scancel, requeue), so the command has received it as well.
# Returns the command's exit status (0 after a requeue).
rearank_run_requeueable() {
  local pid="" status=0 rc warned=0 interrupted=0
  trap 'interrupted=1; warned=1; [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true' USR1
  trap 'interrupted=1; echo "slurm: SIGTERM; waiting for the command to stop" >&2' TERM
  "$@" &
  pid=$!
  while :; do
    interrupted=0
    rc=0
    wait "$pid" || rc=$?
    # a trapped signal makes wait return early (128 + signal): wait again; 127 = it had already ended
    [ "$interrupted" = 1 ] && [ "$rc" = 127 ] && break
    status=$rc
    [ "$interrupted" = 1 ] || break
  done
  trap - USR1 TERM
  if [ "$warned" = 1 ] && [ "$status" != 0 ]; then
    echo "slurm: stopped on SIGUSR1 (time limit near), exit status $status: requeueing job $SLURM_JOB_ID" >&2
    scontrol requeue "$SLURM_JOB_ID" || return "$status"
    return 0
  fi
  return "$status"
}
