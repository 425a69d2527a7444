#!/bin/bash
# The seeds' single-modality setups, each on the shared dataset that fits it, subject-level split:
#   resnet18          finger-fluting seed: torchvision ResNet-18 classifier, lr 1e-4, AdamW  (DATASET, default hands:
#   efficientnet_v2_s finger-fluting seed: torchvision EfficientNet-V2-S classifier            no fluting data is shared)
#   resnet50_head     face seed: ResNet-50 (last 20 layers trainable, Z3) + Dense128/Dense64 head, 224 px, on LFW
# The fingerprint seed's small CNN runs in fingerprints.sh (RUNS=simple_cnn).
# These need ImageNet weights: with network access timm/torchvision download them; offline pass
# WEIGHTS=/path/to/file (the torchvision/timm file for that backbone). ugn refuses to start otherwise; it never
# trains these from random weights. (Offline here only MobileNetV2 and EfficientNet-Lite0 exist: see
# fingerprints.sh / hands.sh / faces.sh for those.)
# Usage: SETUP=resnet18|efficientnet_v2_s|resnet50_head [DATASET=hands|faces|fingerprints] [WEIGHTS=file]
#        PROFILE=cpu|full bash scripts/experiments/seed_setups.sh
# On Slurm: mkdir -p logs && [VARS=...] sbatch scripts/experiments/seed_setups.sh (the log goes to logs/, which must exist)
#SBATCH --job-name=ugn-seed-setups
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
SETUP=${SETUP:?set SETUP=resnet18, efficientnet_v2_s or resnet50_head}
case "$SETUP" in
  resnet18)          TAG=tv-resnet18.imagenet1k_v1_F0_Af_Lb_Z0 ARCH=classifier DATASET=${DATASET:-hands} ;;
  efficientnet_v2_s) TAG=tv-efficientnet_v2_s.imagenet1k_v1_F0_Af_Lb_Z0 ARCH=classifier DATASET=${DATASET:-hands} ;;
  resnet50_head)     TAG=tv-resnet50.imagenet1k_v1_F0_Af_Lb_Z3 ARCH=resnet50_head DATASET=${DATASET:-faces} ;;
  *) echo "SETUP must be resnet18, efficientnet_v2_s or resnet50_head (got '$SETUP')" >&2; exit 2 ;;
esac
case "$PROFILE" in
  full) EPOCHS=${EPOCHS:-25} SIZE=${SIZE:-224} SUBJECTS=0 ;;
  cpu)  EPOCHS=${EPOCHS:-5}  SIZE=${SIZE:-112} SUBJECTS=${SUBJECTS:-600} ;;
  tiny) EPOCHS=1 SIZE=64 SUBJECTS=${SUBJECTS:-40} ;;
esac
NAME=seed_${SETUP}_$DATASET
EXTRA=(--epochs "$EPOCHS" --image-size "$SIZE" --lr "${LR:-1e-4}")
[ -n "${WEIGHTS:-}" ] && EXTRA+=(--weights "$WEIGHTS")
start_experiment "$NAME"
D=$EXP/data
mkdir -p "$D"
case "$DATASET" in
  hands)        timed import ugn data import 11k-hands "$UGN_DATA/11k_hands_subset" -o "$D/manifest.csv" ;;
  faces)        timed import ugn data import lfw "$UGN_DATA/lfw_gender" -o "$D/manifest.csv" ;;
  fingerprints) timed import ugn data import socofing "$UGN_DATA/socofing/Real" -o "$D/manifest.csv" ;;
  *) echo "DATASET must be hands, faces or fingerprints (got '$DATASET')" >&2; exit 2 ;;
esac
MANIFEST=$D/manifest.csv
if [ "$DATASET" = faces ] || [ "$SUBJECTS" != 0 ]; then   # LFW: at most CAP images per identity
  ARGS=(--per-subject "${CAP:-2}"); [ "$DATASET" = faces ] || ARGS=()
  [ "$SUBJECTS" != 0 ] && ARGS+=(--max-subjects "$SUBJECTS")
  cap "$D/subset.csv" "$D/manifest.csv" "${ARGS[@]}"
  MANIFEST=$D/subset.csv
fi
info "$MANIFEST" "$D/info.txt"
timed split ugn data split "$MANIFEST" --ratios 0.7,0.15,0.15 --seed "$SEED" -o "$D/split"
train_eval "$SETUP" "$TAG" "$ARCH" "$D/split/train.csv" "$D/split/val.csv" "$D/split/test.csv" "${EXTRA[@]}"
finish_experiment
