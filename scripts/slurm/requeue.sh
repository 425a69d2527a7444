# Pre-emption and time limits for Slurm jobs (sourced by the sbatch scripts here and by scripts/experiments).
#
# The jobs are submitted with `--signal=B:USR1@120 --requeue`: 120 s before the time limit Slurm sends USR1 to
# this batch shell; on pre-emption or `scancel --signal=TERM` it sends TERM. `requeueable CMD...` runs CMD in the
# background so that the shell can take those signals, passes them on to CMD as TERM (torchrun and srun forward
# TERM to every rank), and waits. `ugn train` answers TERM by saving last.pt at the next step and exiting 75;
# the job is then requeued (`scontrol requeue`) and the same command, with `ugn train --resume auto`, continues.

# requeue_now: requeue this job (under Slurm) and exit 0; outside Slurm exit 143 (stopped by a signal).
requeue_now() {
  if [ -z "${SLURM_JOB_ID:-}" ]; then exit 143; fi
  echo "requeueing job $SLURM_JOB_ID; training state is in last.pt" >&2
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
}
trap requeue_now USR1 TERM   # between commands

# requeueable CMD...: run CMD; on USR1/TERM or CMD's exit code 75 requeue this job; else return CMD's status.
requeueable() {
  if [ -n "${UGN_DRY_RUN:-}" ]; then echo "$@"; return 0; fi
  local child="" code signalled=0
  trap 'signalled=1; if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; fi' USR1 TERM
  "$@" &
  child=$!
  while :; do
    set +e; wait "$child"; code=$?; set -e
    kill -0 "$child" 2>/dev/null || break   # wait returned for a trapped signal: the command still runs
  done
  trap requeue_now USR1 TERM
  if [ "$code" = 75 ] || [ "$signalled" = 1 ]; then requeue_now; fi
  return "$code"
}

# visible_gpus: the GPUs this job may use (SLURM_GPUS_ON_NODE, else nvidia-smi's count, else 0; never fails).
visible_gpus() {
  if [ -n "${SLURM_GPUS_ON_NODE:-}" ]; then echo "${SLURM_GPUS_ON_NODE%%(*}"; return; fi
  if command -v nvidia-smi >/dev/null 2>&1; then
    { nvidia-smi -L 2>/dev/null || true; } | grep -c '^GPU' || true
  else
    echo 0
  fi
}

# workers_per_process N: the booked CPUs (SLURM_CPUS_PER_TASK, default 4 per process) shared by N processes, at least 1.
workers_per_process() {
  local cpus=${SLURM_CPUS_PER_TASK:-$((4 * $1))}
  local n=$(( cpus / $1 ))
  echo $(( n > 0 ? n : 1 ))
}
