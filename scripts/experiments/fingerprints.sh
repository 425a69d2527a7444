#!/bin/bash
# SOCOFing (Real) sex classification with a subject-level split: image-level and per-person (subject-level)
# results. Runs (RUNS, space-separated; default all six):
#   simple_cnn    the fingerprint seed's small CNN (96 px grayscale, BCE, no augmentation), random init as in the seed
#   lite0         EfficientNet-Lite0 classifier, ImageNet weights (found offline; tf_efficientnet_lite0.in1k)
#   mobilenet_v2  torchvision MobileNetV2 IMAGENET1K_V1 classifier (issue 8's baseline; UGN_WEIGHTS_DIR or online)
#   mobilenet_v2_pre  mobilenet_v2 on preprocessed prints (--preprocess crop+clahe+gabor, kept in the checkpoint)
#   mobilenet_v2_ridge  mobilenet_v2 with the ridge-spectrum branch trained jointly (--arch ridge_classifier)
#   recipe        `ugn train --recipe fingerprint` (the tool's suggested settings), evaluated with mirror TTA
#   ridge         `ugn data features` (ridge features of every image), then `ugn fuse`: ridge_image, ridge_person
#   fusion        as ridge, plus the per-person stackers on the scores of SCORE_RUN (default mobilenet_v2, which
#                 must run first): cnn_mean, cnn_stack, combined_person, combined_image (docs/results.md)
# Every ridge/fusion model is evaluated with `ugn evaluate --predictions` and the threshold of its validation table.
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
RUNS=${RUNS:-simple_cnn lite0 mobilenet_v2 recipe fusion}
SCORE_RUN=${SCORE_RUN:-mobilenet_v2}
LOSS=${LOSS:-Lb}      # Lw weights the minority (female) class
AUG=${AUG:-Af}        # augmentation preset of the pretrained runs
RUN_CHOICES="simple_cnn, lite0, mobilenet_v2, mobilenet_v2_pre, mobilenet_v2_ridge, recipe, ridge, fusion"
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
# fuse_run RUN [SCORE_RUN]: ridge features of the whole manifest (once), `ugn fuse` into EXP/RUN, then one
# evaluation per model (test, threshold from its validation table) into EXP/RUN/MODEL/report.
fuse_run() {
  local run=$1 scores=${2:-} models=(ridge_image ridge_person) flags=()
  local features=$EXP/data/ridge_features.csv
  [ -f "$features" ] || timed features ugn data features "$EXP/data/manifest.csv" -o "$features" --workers "$WORKERS"
  if [ -n "$scores" ]; then
    flags=(--val-scores "$EXP/$scores/val_predictions.csv" --test-scores "$EXP/$scores/report/predictions.csv")
    models+=(cnn_mean cnn_stack combined_person combined_image)
  fi
  timed "fuse_$run" ugn fuse --features "$features" --train "$SPLIT/train.csv" --val "$SPLIT/val.csv" \
    --test "$SPLIT/test.csv" --seed "$SEED" -o "$EXP/$run" ${flags[@]+"${flags[@]}"}
  for model in "${models[@]}"; do
    timed "evaluate_${run}_$model" ugn evaluate --predictions "$EXP/$run/$model/test_predictions.csv" \
      --threshold-from "$EXP/$run/$model/val_predictions.csv" --seed "$SEED" --output "$EXP/$run/$model/report" \
      --registry "$EXP/registry.csv" --tag "$run/$model"
  done
}

# mobilenet_v2_variant RUN ARCH [ugn train flags]: the mobilenet_v2 run (classifier_run's) with one change, its
# architecture or extra flags, trained into EXP/RUN.
mobilenet_v2_variant() {
  local run=$1 arch=$2; shift 2
  train_eval "$run" "$(pretrained_tag mobilenet_v2)" "$arch" "$SPLIT/train.csv" "$SPLIT/val.csv" "$SPLIT/test.csv" \
    --epochs "$EPOCHS" --image-size "$SIZE" --lr "${LR:-3e-4}" "$@"
}

for run in $RUNS; do
  if [ "$run" = ridge ]; then
    fuse_run ridge
  elif [ "$run" = fusion ]; then
    fuse_run fusion "$SCORE_RUN"
  elif [ "$run" = simple_cnn ]; then
    train_eval simple_cnn "simple_cnn_F0_An_Lb_Z0" simple_cnn \
      "$SPLIT/train.csv" "$SPLIT/val.csv" "$SPLIT/test.csv" --epochs "$CNN_EPOCHS" --image-size 96 --lr 1e-3
  elif [ "$run" = mobilenet_v2_pre ]; then
    mobilenet_v2_variant "$run" classifier --preprocess crop+clahe+gabor
  elif [ "$run" = mobilenet_v2_ridge ]; then
    mobilenet_v2_variant "$run" ridge_classifier
  else
    classifier_run "$run" fingerprint "$SPLIT/train.csv" "$SPLIT/val.csv" "$SPLIT/test.csv"
  fi
done
finish_experiment
