#!/bin/bash
# Adience age + gender with the benchmark's 5-fold protocol: for each fold K, fold K is the test set and the
# other four folds are split by subject into train/val (0.8/0.2, seeded); a multitask model (gender head + the
# eight Adience age groups) trains on train, the validation set picks best.pt and the gender threshold, and
# the test fold is evaluated once (gender BA/ROC-AUC with subject-bootstrap CIs; age exact and one-off
# accuracy). folds.md gives one row per fold and mean ± sd over the folds, as Adience papers report.
# Transfer: with CELEBA=/path/to/celeba, a multitask model first trains on CelebA's official partition
# (age head idle: CelebA has no ages) and every fold fine-tunes from its best.pt with --weights (the whole
# model loads: same architecture and heads).
# Data: ADIENCE (default $UGN_DATA/adience; the fold files + faces/ or aligned/), IMAGES (faces | aligned).
# Usage: PROFILE=cpu|full [ADIENCE=...] [CELEBA=...] [FOLDS="0 1 2 3 4"] [SEED=0] bash scripts/experiments/adience.sh
# On Slurm: mkdir -p logs && [VARS=...] sbatch scripts/experiments/adience.sh (the log goes to logs/, which must exist)
#SBATCH --job-name=ugn-adience
#SBATCH --nodes=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
HERE=$(dirname "$0")   # under sbatch the script runs from a spool copy: find common.sh from the submit folder
[ -f "$HERE/common.sh" ] || HERE=${SLURM_SUBMIT_DIR:-.}/scripts/experiments
source "$HERE/common.sh"
NAME=adience
ADIENCE=${ADIENCE:-$UGN_DATA/adience}
CELEBA=${CELEBA:-}
FOLDS=${FOLDS:-0 1 2 3 4}
LOSS=${LOSS:-Lb}
AUG=${AUG:-Af}
case "$PROFILE" in
  full) EPOCHS=${EPOCHS:-20} SIZE=${SIZE:-224} CELEBA_SUBJECTS=${CELEBA_SUBJECTS:-0} ;;
  cpu)  EPOCHS=${EPOCHS:-3}  SIZE=${SIZE:-112} CELEBA_SUBJECTS=${CELEBA_SUBJECTS:-2000} ;;
  tiny) EPOCHS=1 SIZE=64 CELEBA_SUBJECTS=${CELEBA_SUBJECTS:-40} ;;
esac
TAG=tf_efficientnet_lite0.in1k_F0_${AUG}_${LOSS}_Z0
start_experiment "$NAME"
D=$EXP/data
[ "${DRY_RUN:-0}" = 1 ] || mkdir -p "$D"
timed import ugn data import adience "$ADIENCE" -o "$D/adience.csv" ${IMAGES:+--images "$IMAGES"}
info "$D/adience.csv" "$D/adience_info.txt"
timed split ugn data split "$D/adience.csv" --by-column fold --folds --ratios 0.8,0.2 --seed "$SEED" -o "$D/folds"

WEIGHTS=()
if [ -n "$CELEBA" ]; then
  timed import_celeba ugn data import celeba "$CELEBA" -o "$D/celeba.csv"
  timed split_celeba ugn data split "$D/celeba.csv" --by-column split -o "$D/celeba_split"
  CELEBA_TRAIN=$D/celeba_split/train.csv CELEBA_VAL=$D/celeba_split/val.csv
  if [ "$CELEBA_SUBJECTS" != 0 ]; then   # the cpu and tiny profiles train on a seeded subset of CelebA
    cap "$D/celeba_train_subset.csv" "$CELEBA_TRAIN" --max-subjects "$CELEBA_SUBJECTS"
    cap "$D/celeba_val_subset.csv" "$CELEBA_VAL" --max-subjects "$(( CELEBA_SUBJECTS / 4 + 1 ))"
    CELEBA_TRAIN=$D/celeba_train_subset.csv CELEBA_VAL=$D/celeba_val_subset.csv
  fi
  train_eval celeba "$TAG" multitask "$CELEBA_TRAIN" "$CELEBA_VAL" "$D/celeba_split/test.csv" \
    --epochs "$EPOCHS" --image-size "$SIZE"
  WEIGHTS=(--weights "$EXP/celeba/best.pt")
fi

REPORTS=()
for k in $FOLDS; do
  F=$D/folds/fold_$k
  train_eval "fold_$k" "$TAG" multitask "$F/train.csv" "$F/val.csv" "$F/test.csv" \
    --epochs "$EPOCHS" --image-size "$SIZE" ${WEIGHTS[@]+"${WEIGHTS[@]}"}
  REPORTS+=("$EXP/fold_$k/report")
done
if [ "${DRY_RUN:-0}" = 1 ]; then
  echo "python3 $EXP_DIR/summarize.py ${REPORTS[*]} --folds > $EXP/folds.md"
else
  python3 "$EXP_DIR/summarize.py" "${REPORTS[@]}" --folds > "$EXP/folds.md"
  cat "$EXP/folds.md"
fi
finish_experiment
