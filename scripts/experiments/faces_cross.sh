#!/bin/bash
# Cross-dataset faces: train on LFW only (identity-level split, CAP images per identity, default 1), evaluate on
# LFW's test identities AND on utkface_dev (UTKFace chips, cross-dataset evaluation only: nothing is trained,
# tuned or thresholded on it), with fairness by age and race. Every run starts from `ugn train --recipe face`.
# Runs (RUNS; default "plain framed"):
#   plain         the face recipe on LFW's frames as they are (--no-face-crop: the "before")
#   framed        the face recipe with the offline face detector's framing (--face-crop, as the recipe has it)
#   part-4 candidates, framed, each chosen or not on LFW validation (validation chose dlib_probe: the recipe now):
#   framed_af     EfficientNet-Lite0, Af (the recipe first)   framed_ar     Lite0, RandAugment (Ar)
#   framed_am     Lite0, Af + mixup/cutmix (Am)               framed_160    Lite2 at 160 px
#   framed_lite2  EfficientNet-Lite2 weights, Af, 128 px (the recipe second)
#   dlib's face-recognition ResNet (dlib-face_resnet.v1, 150 px chips at its own 0.25 margin):
#   dlib_probe    linear probe (Z1) on its 128-D descriptor, no augmentation, lr 0.01 (the recipe now)
#   dlib_probe_af the probe with full augmentation (Af)      dlib_ft       whole network fine-tuned (Z0), Af
# Per run: RUN/report (LFW test, threshold chosen on LFW validation, mirror TTA), RUN/report_utk (utkface_dev,
# the same threshold), RUN/report_utk_05 (utkface_dev at 0.5) and RUN/report_utk_eer (threshold at the equal
# error rate of LFW validation); the last two re-read RUN/report_utk's predictions (no new prediction).
# The cpu profile trains with the face recipe's own budget (128 px, 6 epochs) unless EPOCHS / SIZE say otherwise
# (the figures of docs/results.md used EPOCHS=1 SIZE=112: a 2-core machine shared with other jobs).
# Usage: PROFILE=cpu|full [RUNS="plain framed"] [CAP=1] [EPOCHS=N SIZE=N] bash scripts/experiments/faces_cross.sh
# On Slurm: mkdir -p logs && [VARS=...] sbatch scripts/experiments/faces_cross.sh (the log goes to logs/, which must exist)
#SBATCH --job-name=ugn-faces-cross
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
NAME=faces_cross
RUNS=${RUNS:-plain framed}
CAP=${CAP:-1}
case "$PROFILE" in
  full) SUBJECTS=0 EPOCHS=${EPOCHS:-20} SIZE=${SIZE:-224} ;;
  cpu)  SUBJECTS=0 ;;
  tiny) SUBJECTS=40 ;;
esac
# cross_flags RUN: the ugn train flags that make RUN out of the face recipe. The EfficientNet candidates train at
# lr 3e-4 and 128 px (SIZE, or 64 px in the tiny profile); dlib's network always takes its own 150 px chips.
cross_flags() {
  local size=128; [ "$PROFILE" != tiny ] || size=64
  local lite0=tf_efficientnet_lite0.in1k_F0 dlib=dlib-face_resnet.v1_F0 cnn=(--lr 3e-4 --image-size "${SIZE:-$size}")
  case "$1" in
    plain)        RUN_FLAGS=(--no-face-crop) ;;
    framed)       RUN_FLAGS=(--face-crop) ;;
    framed_af)    RUN_FLAGS=(--face-crop "${cnn[@]}" --tag "${lite0}_Af_Lw_Z0") ;;
    framed_ar)    RUN_FLAGS=(--face-crop "${cnn[@]}" --tag "${lite0}_Ar_Lw_Z0") ;;
    framed_am)    RUN_FLAGS=(--face-crop "${cnn[@]}" --tag "${lite0}_Am_Lw_Z0") ;;
    framed_160)   RUN_FLAGS=(--face-crop --lr 3e-4 --image-size 160 --tag tf_efficientnet_lite2.in1k_F0_Af_Lw_Z0) ;;
    framed_lite2) RUN_FLAGS=(--face-crop "${cnn[@]}" --tag tf_efficientnet_lite2.in1k_F0_Af_Lw_Z0) ;;
    dlib_probe)   RUN_FLAGS=(--face-crop --image-size 150 --lr 0.01 --tag "${dlib}_An_Lw_Z1") ;;   # = framed
    dlib_probe_af) RUN_FLAGS=(--face-crop --image-size 150 --lr 0.01 --tag "${dlib}_Af_Lw_Z1") ;;
    dlib_ft)      RUN_FLAGS=(--face-crop --image-size 150 --lr 3e-4 --tag "${dlib}_Af_Lw_Z0") ;;
    *) echo "unknown run '$1' (plain, framed, framed_af, framed_ar, framed_am, framed_160, framed_lite2, dlib_probe, dlib_probe_af, dlib_ft)" >&2; exit 2 ;;
  esac
}
BUDGET=()   # cpu profile: EPOCHS / SIZE replace the recipe's (the full and tiny profiles set their own)
if [ "$PROFILE" = cpu ]; then
  if [ -n "${EPOCHS:-}" ]; then BUDGET+=(--epochs "$EPOCHS"); fi
  if [ -n "${SIZE:-}" ]; then BUDGET+=(--image-size "$SIZE"); fi
fi
for run in $RUNS; do cross_flags "$run"; done   # refuse an unknown run before anything is written
start_experiment "$NAME"
D=$EXP/data
[ "${DRY_RUN:-0}" = 1 ] || mkdir -p "$D"
timed import ugn data import lfw "$UGN_DATA/lfw_gender" -o "$D/lfw.csv"
if [ "$SUBJECTS" = 0 ]; then cap "$D/subset.csv" "$D/lfw.csv" --per-subject "$CAP"
else cap "$D/subset.csv" "$D/lfw.csv" --max-subjects "$SUBJECTS" --per-subject "$CAP"; fi
info "$D/subset.csv" "$D/info.txt"
timed split ugn data split "$D/subset.csv" --ratios 0.7,0.15,0.15 --seed "$SEED" -o "$D/split"
timed import_utk ugn data import utkface "$UGN_DATA/utkface_dev" -o "$D/utkface.csv"
info "$D/utkface.csv" "$D/utkface_info.txt"
for run in $RUNS; do
  cross_flags "$run"
  train_eval_recipe "$run" face "$D/split/train.csv" "$D/split/val.csv" "$D/split/test.csv" ${BUDGET[@]+"${BUDGET[@]}"} "${RUN_FLAGS[@]}"
  R=$EXP/$run
  timed "evaluate_${run}_utk" ugn evaluate "$R/best.pt" --data "$D/utkface.csv" --tta \
    --threshold-from "$R/val_report_tta/predictions.csv" --seed "$SEED" --device "$DEVICE" \
    --output "$R/report_utk" --registry "$EXP/registry.csv"
  timed "evaluate_${run}_utk_05" ugn evaluate --predictions "$R/report_utk/predictions.csv" --threshold 0.5 \
    --seed "$SEED" --output "$R/report_utk_05" --no-registry --no-plots
  timed "evaluate_${run}_utk_eer" ugn evaluate --predictions "$R/report_utk/predictions.csv" \
    --threshold-from "$R/val_report_tta/predictions.csv" --threshold-method eer \
    --seed "$SEED" --output "$R/report_utk_eer" --no-registry --no-plots
done
finish_experiment
