# Shared by the experiment scripts (sourced, not run). Each script sets NAME, PROFILE-dependent settings,
# then calls these helpers. Everything below calls `ugn`.
#
# Environment:
#   UGN        command that runs ugn (default: `ugn`; e.g. "python -m unifiedgender")
#   UGN_DATA   folder holding 11k_hands_subset/, lfw_gender/, socofing/ (default ../shared/data)
#   OUT        results root (default experiments_output); each experiment writes OUT/NAME
#   PROFILE    cpu (small, minutes on one core) | full (GPU settings); tiny (seconds, for tests only)
#   SEED       split and training seed (default 0)
#   WORKERS    ugn train --workers and compute threads (default: the booked CPUs, SLURM_CPUS_PER_TASK, else 1)
#   DEVICE     ugn --device (default auto)
#   OVERWRITE  1 = replace this experiment's previous output; otherwise a rerun writes OUT/NAME-2 (-3, ...) and
#              the earlier results stay
# Under Slurm (`--signal=B:USR1@120 --requeue`): USR1/TERM stop the running step (ugn train saves last.pt) and
# requeue the job; the requeued job finds its folder (slurm_job in run_info.txt), skips the steps it finished
# (steps_done.txt) and continues training with `ugn train --resume auto`.
#   DRY_RUN    1 = print the ugn and helper commands instead of running them (only empty folders are made)
set -euo pipefail

EXP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$EXP_DIR/../slurm/requeue.sh"
read -r -a UGN_CMD <<< "${UGN:-ugn}"
UGN_DATA=${UGN_DATA:-../shared/data}
OUT=${OUT:-experiments_output}
PROFILE=${PROFILE:-cpu}
SEED=${SEED:-0}
WORKERS=${WORKERS:-${SLURM_CPUS_PER_TASK:-1}}
DEVICE=${DEVICE:-auto}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$WORKERS} MKL_NUM_THREADS=${MKL_NUM_THREADS:-$WORKERS}

case "$PROFILE" in cpu|full|tiny) ;; *) echo "PROFILE must be cpu, full or tiny (got '$PROFILE')" >&2; exit 2;; esac
if ! command -v "${UGN_CMD[0]}" >/dev/null 2>&1; then
  echo "'${UGN_CMD[0]}' not found: activate the environment with unifiedgender installed, or set UGN" >&2; exit 2
fi

ugn() { if [ "${DRY_RUN:-0}" = 1 ]; then echo "ugn $*"; else "${UGN_CMD[@]}" "$@"; fi; }

# start_experiment NAME: make OUT/NAME and start the clock. Earlier results there are kept: the run goes to
# OUT/NAME-2 (-3, ...) instead, unless OVERWRITE=1. A requeued Slurm job continues the folder it started.
start_experiment() {
  EXP_START=$(date +%s)
  if [ "${SLURM_RESTART_COUNT:-0}" != 0 ]; then
    for EXP in "$OUT/$1" "$OUT/$1"-*; do
      if grep -qx "slurm_job: ${SLURM_JOB_ID:-}" "$EXP/run_info.txt" 2>/dev/null; then
        echo "requeued (restart $SLURM_RESTART_COUNT): continuing $EXP" >&2
        echo "requeued: $(date -u +%FT%TZ)" >> "$EXP/run_info.txt"; return
      fi
    done
  fi
  EXP=$OUT/$1
  if [ -n "$(ls -A "$EXP" 2>/dev/null)" ]; then
    if [ "${OVERWRITE:-0}" = 1 ]; then
      [ "${DRY_RUN:-0}" = 1 ] || rm -rf "$EXP"
    else
      local n=2
      while [ -n "$(ls -A "$OUT/$1-$n" 2>/dev/null)" ]; do n=$((n + 1)); done
      echo "$EXP holds earlier results (kept); this run writes $OUT/$1-$n (OVERWRITE=1 replaces $EXP instead)" >&2
      EXP=$OUT/$1-$n
    fi
  fi
  if [ "${DRY_RUN:-0}" = 1 ]; then return; fi
  mkdir -p "$EXP"
  { echo "experiment: $1"; echo "profile: $PROFILE"; echo "seed: $SEED"; echo "started: $(date -u +%FT%TZ)";
    echo "host: $(hostname)"; echo "cpu: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')";
    echo "threads: OMP_NUM_THREADS=$OMP_NUM_THREADS"; echo "device: $DEVICE";
    if [ -n "${SLURM_JOB_ID:-}" ]; then echo "slurm_job: $SLURM_JOB_ID"; fi
    if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -L 2>/dev/null | sed 's/^/gpu: /' || true; fi; } > "$EXP/run_info.txt"
}

# timed LABEL CMD...: run CMD (requeueable), append "LABEL seconds" to run_info.txt, the exact command to
# commands.sh and, once it succeeded, to steps_done.txt (a requeued job skips those).
timed() {
  local label=$1; shift
  if [ "${DRY_RUN:-0}" = 1 ]; then
    [ "$1" = ugn ] || { echo "$*"; return; }
    "$@"; return
  fi
  local command; command=$(printf '%q ' "$@")
  if grep -qxF "$command" "$EXP/steps_done.txt" 2>/dev/null; then echo "done before the requeue: $label" >&2; return; fi
  echo "$command" >> "$EXP/commands.sh"
  local t0; t0=$(date +%s)
  if [ "$1" = ugn ]; then shift; requeueable "${UGN_CMD[@]}" "$@"; else requeueable "$@"; fi
  echo "time_${label}_s: $(( $(date +%s) - t0 ))" >> "$EXP/run_info.txt"
  echo "$command" >> "$EXP/steps_done.txt"
}

finish_experiment() {
  [ "${DRY_RUN:-0}" = 1 ] && return
  echo "time_total_s: $(( $(date +%s) - EXP_START ))" >> "$EXP/run_info.txt"
  echo "finished: $(date -u +%FT%TZ)" >> "$EXP/run_info.txt"
  echo "done: $EXP"; cat "$EXP/run_info.txt"
}

# import_split FORMAT SOURCE [import flags]: import into EXP/data/manifest.csv, split 0.7/0.15/0.15 by subject.
import_split() {
  local format=$1 source=$2; shift 2
  [ "${DRY_RUN:-0}" = 1 ] || mkdir -p "$EXP/data"
  timed import ugn data import "$format" "$source" -o "$EXP/data/manifest.csv" "$@"
  info "$EXP/data/manifest.csv" "$EXP/data/info.txt"
  timed split ugn data split "$EXP/data/manifest.csv" --ratios 0.7,0.15,0.15 --seed "$SEED" -o "$EXP/data/split"
}

# info MANIFEST DEST: `ugn data info` tables into DEST.
info() { if [ "${DRY_RUN:-0}" = 1 ]; then ugn data info "$1"; else ugn data info "$1" > "$2"; fi; }

# cap OUT IN [IN2 ...] [--per-subject N] [--max-subjects M]: deterministic subsample (`ugn data subset`).
cap() { local out=$1; shift; timed cap ugn data subset "$@" -o "$out" --seed "$SEED"; }

# pretrained_tag RUN: the classifier run tag of an offline-pretrained backbone (lite0, mobilenet_v2) with AUG and LOSS.
pretrained_tag() {
  case "$1" in
    lite0)        echo "tf_efficientnet_lite0.in1k_F0_${AUG}_${LOSS}_Z0" ;;
    mobilenet_v2) echo "tv-mobilenet_v2.imagenet1k_v1_F0_${AUG}_${LOSS}_Z0" ;;
    *) return 1 ;;
  esac
}

# recipe_flags: the ugn train flags that adapt a recipe (`--recipe`, tuned on the cpu profile) to PROFILE.
recipe_flags() {
  case "$PROFILE" in
    cpu)  RECIPE_FLAGS=() ;;
    full) RECIPE_FLAGS=(--epochs "$EPOCHS"); if [ "${SIZE:-0}" != 0 ]; then RECIPE_FLAGS+=(--image-size "$SIZE"); fi ;;
    tiny) RECIPE_FLAGS=(--epochs 1 --image-size 64) ;;
  esac
}

# train_eval_recipe RUN RECIPE TRAIN VAL TEST [ugn train flags]: train with `ugn train --recipe RECIPE`; evaluate
# the validation set with and without mirror TTA (EXP/RUN/val_report{,_tta}: the evidence for --tta), then the
# test set with --tta and the threshold chosen on the validation manifest under TTA.
train_eval_recipe() {
  local run=$1 recipe=$2 train=$3 val=$4 test=$5; shift 5
  recipe_flags
  timed "train_$run" ugn train --recipe "$recipe" --train "$train" --val "$val" \
    --output "$EXP/$run" --resume auto --seed "$SEED" --workers "$WORKERS" --device "$DEVICE" \
    --cache memory --log-every-steps 50 ${RECIPE_FLAGS[@]+"${RECIPE_FLAGS[@]}"} "$@"
  timed "evaluate_${run}_val" ugn evaluate "$EXP/$run/best.pt" --data "$val" --seed "$SEED" --device "$DEVICE" \
    --output "$EXP/$run/val_report" --no-registry --no-plots
  timed "evaluate_${run}_val_tta" ugn evaluate "$EXP/$run/best.pt" --data "$val" --tta --seed "$SEED" \
    --device "$DEVICE" --output "$EXP/$run/val_report_tta" --no-registry --no-plots
  timed "evaluate_$run" ugn evaluate "$EXP/$run/best.pt" --data "$test" --tta \
    --threshold-from "$val" --seed "$SEED" --device "$DEVICE" \
    --output "$EXP/$run/report" --registry "$EXP/registry.csv"
}

# classifier_run RUN RECIPE TRAIN VAL TEST: RUN `recipe` trains with `--recipe RECIPE` (train_eval_recipe); any
# other RUN is an offline-pretrained classifier (pretrained_tag) with EPOCHS, SIZE and LR (default 3e-4).
# An unknown RUN stops the script, naming RUN_CHOICES (default: lite0, mobilenet_v2, recipe).
classifier_run() {
  local run=$1 recipe=$2 train=$3 val=$4 test=$5 tag
  if [ "$run" = recipe ]; then train_eval_recipe recipe "$recipe" "$train" "$val" "$test"; return; fi
  tag=$(pretrained_tag "$run") || { echo "unknown run '$run' (${RUN_CHOICES:-lite0, mobilenet_v2, recipe})" >&2; exit 2; }
  train_eval "$run" "$tag" classifier "$train" "$val" "$test" --epochs "$EPOCHS" --image-size "$SIZE" --lr "${LR:-3e-4}"
}

# train_eval RUN TAG ARCH TRAIN VAL TEST [ugn train flags]: train into EXP/RUN, evaluate on TEST with the
# threshold chosen (Youden) on the run's validation predictions, report into EXP/RUN/report.
train_eval() {
  local run=$1 tag=$2 arch=$3 train=$4 val=$5 test=$6; shift 6
  timed "train_$run" ugn train --tag "$tag" --arch "$arch" --train "$train" --val "$val" \
    --output "$EXP/$run" --resume auto --seed "$SEED" --workers "$WORKERS" --device "$DEVICE" \
    --cache memory --early-stop-patience 0 --log-every-steps 50 "$@"
  timed "evaluate_$run" ugn evaluate "$EXP/$run/best.pt" --data "$test" \
    --threshold-from "$EXP/$run/val_predictions.csv" --seed "$SEED" --device "$DEVICE" \
    --output "$EXP/$run/report" --registry "$EXP/registry.csv" --tag "$tag"
}
