#!/bin/bash
# SOCOFing (Real) sex classification with a subject-level split: image-level and per-person (subject-level)
# results. Runs (RUNS, space-separated; default all four):
#   simple_cnn    the fingerprint seed's small CNN (96 px grayscale, BCE, no augmentation), random init as in the seed
#   lite0         EfficientNet-Lite0 classifier, ImageNet weights (found offline; tf_efficientnet_lite0.in1k)
#   mobilenet_v2  torchvision MobileNetV2 IMAGENET1K_V1 classifier (issue 8's baseline; UGN_WEIGHTS_DIR or online)
#   recipe        `ugn train --recipe fingerprint` (the tool's suggested settings), evaluated with mirror TTA
# Usage: PROFILE=cpu|full [RUNS="simple_cnn lite0"] [SEED=0] bash scripts/experiments/fingerprints.sh
# On Slurm: mkdir -p logs && [VARS=...] sbatch scripts/experiments/fingerprints.sh (the log goes to logs/, which must exist)
#SBATCH --job-name=ugn-fingerprints
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
NAME=fingerprints
RUNS=${RUNS:-simple_cnn lite0 mobilenet_v2 recipe}
LOSS=${LOSS:-Lb}      # Lw weights the minority (female) class
AUG=${AUG:-Af}        # augmentation preset of the pretrained runs
RUN_CHOICES="simple_cnn, lite0, mobilenet_v2, recipe"
case "$PROFILE" in
  full) EPOCHS=${EPOCHS:-20} SIZE=${SIZE:-224} CNN_EPOCHS=${CNN_EPOCHS:-30} SUBJECTS=0 ;;
  cpu)  EPOCHS=${EPOCHS:-3}  SIZE=${SIZE:-96} CNN_EPOCHS=${CNN_EPOCHS:-5} SUBJECTS=${SUBJECTS:-0} ;;
  tiny) EPOCHS=1 SIZE=64 CNN_EPOCHS=1 SUBJECTS=${SUBJECTS:-40} ;;
esac
start_experiment "$NAME"
import_split socofing "$UGN_DATA/socofing/Real"
SPLIT=$EXP/data/split
if [ "$SUBJECTS" != 0 ]; then   # smaller set of people (tiny profile): cap before splitting
  cap "$EXP/data/capped.csv" "$EXP/data/manifest.csv" --max-subjects "$SUBJECTS"
  SPLIT=$EXP/data/capped_split
  timed split_capped ugn data split "$EXP/data/capped.csv" --ratios 0.7,0.15,0.15 --seed "$SEED" -o "$SPLIT"
fi
for run in $RUNS; do
  if [ "$run" = simple_cnn ]; then
    train_eval simple_cnn "simple_cnn_F0_An_Lb_Z0" simple_cnn \
      "$SPLIT/train.csv" "$SPLIT/val.csv" "$SPLIT/test.csv" --epochs "$CNN_EPOCHS" --image-size 96 --lr 1e-3
  else
    classifier_run "$run" fingerprint "$SPLIT/train.csv" "$SPLIT/val.csv" "$SPLIT/test.csv"
  fi
done
finish_experiment
