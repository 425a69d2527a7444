#!/bin/bash
# 11K Hands (10 % thumbnail subset, 184 subjects) sex classification with a subject-level split; fairness by
# skin colour and age (the importer adds both from HandInfo.csv, the report breaks them down).
# Runs (RUNS; default "lite0 recipe"): lite0 (EfficientNet-Lite0 classifier, ImageNet, found offline),
# mobilenet_v2 (torchvision IMAGENET1K_V1; UGN_WEIGHTS_DIR or online), recipe (`ugn train --recipe hand`,
# evaluated with mirror TTA).
# Usage: PROFILE=cpu|full [RUNS="lite0 recipe"] [SEED=0] bash scripts/experiments/hands.sh
# On Slurm: mkdir -p logs && [VARS=...] sbatch scripts/experiments/hands.sh (the log goes to logs/, which must exist)
#SBATCH --job-name=ugn-hands
#SBATCH --nodes=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
HERE=$(dirname "$0")   # under sbatch the script runs from a spool copy: find common.sh from the submit folder
[ -f "$HERE/common.sh" ] || HERE=${SLURM_SUBMIT_DIR:-.}/scripts/experiments
source "$HERE/common.sh"
NAME=hands
RUNS=${RUNS:-lite0 recipe}
LOSS=${LOSS:-Lb}
AUG=${AUG:-Af}
case "$PROFILE" in
  full) EPOCHS=${EPOCHS:-30} SIZE=${SIZE:-224} ;;
  cpu)  EPOCHS=${EPOCHS:-8}  SIZE=${SIZE:-112} ;;
  tiny) EPOCHS=1 SIZE=64 ;;
esac
start_experiment "$NAME"
import_split 11k-hands "$UGN_DATA/11k_hands_subset"
SPLIT=$EXP/data/split
for run in $RUNS; do
  classifier_run "$run" hand "$SPLIT/train.csv" "$SPLIT/val.csv" "$SPLIT/test.csv"
done
finish_experiment
