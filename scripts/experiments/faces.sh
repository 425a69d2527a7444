#!/bin/bash
# LFW (deep-funneled, 5,749 identities) sex classification with an identity-level split. Training and
# validation images are capped per identity (CAP, default 2: George_W_Bush alone has 530 images); the test
# set keeps every image of its identities in the full profile (the report's subject level averages them).
# The cpu profile caps every identity before splitting (so the test set is capped too) and may keep only
# SUBJECTS identities (default all; the tiny profile keeps 40).
# Runs (RUNS; default "lite0 recipe"): lite0 (EfficientNet-Lite0, ImageNet, offline), mobilenet_v2
# (torchvision V1), recipe (`ugn train --recipe face`, evaluated with mirror TTA).
# Usage: PROFILE=cpu|full [RUNS="lite0 recipe"] [CAP=2] [SUBJECTS=all|N] bash scripts/experiments/faces.sh
# On Slurm: mkdir -p logs && [VARS=...] sbatch scripts/experiments/faces.sh (the log goes to logs/, which must exist)
#SBATCH --job-name=ugn-faces
#SBATCH --nodes=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
HERE=$(dirname "$0")   # under sbatch the script runs from a spool copy: find common.sh from the submit folder
[ -f "$HERE/common.sh" ] || HERE=${SLURM_SUBMIT_DIR:-.}/scripts/experiments
source "$HERE/common.sh"
NAME=faces
RUNS=${RUNS:-lite0 recipe}
LOSS=${LOSS:-Lb}
AUG=${AUG:-Af}
CAP=${CAP:-2}
case "$PROFILE" in
  full) EPOCHS=${EPOCHS:-20} SIZE=${SIZE:-224} SUBJECTS=0 ;;
  cpu)  EPOCHS=${EPOCHS:-5}  SIZE=${SIZE:-112} SUBJECTS=${SUBJECTS:-all} ;;
  tiny) EPOCHS=1 SIZE=64 SUBJECTS=${SUBJECTS:-40} ;;
esac
start_experiment "$NAME"
D=$EXP/data
if [ "$SUBJECTS" = 0 ]; then
  import_split lfw "$UGN_DATA/lfw_gender"
  cap "$D/split/train_capped.csv" "$D/split/train.csv" --per-subject "$CAP"
  cap "$D/split/val_capped.csv" "$D/split/val.csv" --per-subject "$CAP"
  TEST=$D/split/test.csv
else
  mkdir -p "$D"
  timed import ugn data import lfw "$UGN_DATA/lfw_gender" -o "$D/manifest.csv"
  if [ "$SUBJECTS" = all ]; then cap "$D/subset.csv" "$D/manifest.csv" --per-subject "$CAP"
  else cap "$D/subset.csv" "$D/manifest.csv" --max-subjects "$SUBJECTS" --per-subject "$CAP"; fi
  info "$D/subset.csv" "$D/info.txt"
  timed split ugn data split "$D/subset.csv" --ratios 0.7,0.15,0.15 --seed "$SEED" -o "$D/split"
  timed copy cp "$D/split/train.csv" "$D/split/train_capped.csv"
  timed copy cp "$D/split/val.csv" "$D/split/val_capped.csv"
  TEST=$D/split/test.csv
fi
for run in $RUNS; do
  classifier_run "$run" face "$D/split/train_capped.csv" "$D/split/val_capped.csv" "$TEST"
done
finish_experiment
