#!/bin/bash
# Unified hand-or-face models trained on 11K Hands + LFW together (subject-level split stratified by modality),
# evaluated on the mixed test set and per modality (hand, face; threshold chosen on the run's own validation
# predictions of that modality). LFW is capped per identity (CAP, default 2) so that it does not swamp the hands.
# Runs (RUNS; default "umcc mag recipe"): umcc (UnifiedGenderNet's UMCC), mag (MAG, soft gating), recipe
# (`ugn train --recipe unified`: UMCC on EfficientNet-Lite0 at 128 px, evaluated with mirror TTA).
# Backbone: BACKBONE (cpu default tf_efficientnet_lite0.in1k, offline; full default tf_efficientnetv2_s.in1k as
# in UnifiedGenderNet, which needs network access or WEIGHTS=path to its ImageNet file).
# Usage: PROFILE=cpu|full [RUNS="umcc mag recipe"] [SUBJECTS=400] bash scripts/experiments/unified.sh
# On Slurm: mkdir -p logs && [VARS=...] sbatch scripts/experiments/unified.sh (the log goes to logs/, which must exist)
#SBATCH --job-name=ugn-unified
#SBATCH --nodes=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --time=06:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
HERE=$(dirname "$0")   # under sbatch the script runs from a spool copy: find common.sh from the submit folder
[ -f "$HERE/common.sh" ] || HERE=${SLURM_SUBMIT_DIR:-.}/scripts/experiments
source "$HERE/common.sh"
NAME=unified
RUNS=${RUNS:-umcc mag recipe}
CODES=${CODES:-F0_Af_Lf_Z0}   # UnifiedGenderNet's best published tag codes
CAP=${CAP:-2}
case "$PROFILE" in
  full) EPOCHS=${EPOCHS:-30} SIZE=${SIZE:-0} SUBJECTS=0 BACKBONE=${BACKBONE:-tf_efficientnetv2_s.in1k} ;;
  cpu)  EPOCHS=${EPOCHS:-5}  SIZE=${SIZE:-112} SUBJECTS=${SUBJECTS:-400} BACKBONE=${BACKBONE:-tf_efficientnet_lite0.in1k} ;;
  tiny) EPOCHS=1 SIZE=64 SUBJECTS=${SUBJECTS:-30} BACKBONE=${BACKBONE:-tf_efficientnet_lite0.in1k} ;;
esac
EXTRA=()
[ "$SIZE" != 0 ] && EXTRA+=(--image-size "$SIZE")      # 0 = the backbone's own input size
[ -n "${WEIGHTS:-}" ] && EXTRA+=(--weights "$WEIGHTS")
start_experiment "$NAME"
D=$EXP/data
mkdir -p "$D"
timed import_hands ugn data import 11k-hands "$UGN_DATA/11k_hands_subset" -o "$D/hands.csv"
timed import_faces ugn data import lfw "$UGN_DATA/lfw_gender" -o "$D/faces.csv"
if [ "$SUBJECTS" = 0 ]; then cap "$D/faces_capped.csv" "$D/faces.csv" --per-subject "$CAP"
else cap "$D/faces_capped.csv" "$D/faces.csv" --per-subject "$CAP" --max-subjects "$SUBJECTS"; fi
cap "$D/manifest.csv" "$D/hands.csv" "$D/faces_capped.csv"
info "$D/manifest.csv" "$D/info.txt"
timed split ugn data split "$D/manifest.csv" --ratios 0.7,0.15,0.15 --seed "$SEED" -o "$D/split"
for run in $RUNS; do
  case "$run" in
    umcc) tag="${BACKBONE}_${CODES}" ;;
    mag)  tag="${BACKBONE}_${CODES}_gating=soft" ;;
    recipe) tag="" ;;
    *) echo "unknown run '$run' (umcc, mag, recipe)" >&2; exit 2 ;;
  esac
  if [ "$run" = recipe ]; then   # `ugn train --recipe unified`, mirror TTA: validation predictions under TTA
    train_eval_recipe recipe unified "$D/split/train.csv" "$D/split/val.csv" "$D/split/test.csv"
    val_predictions=$EXP/$run/val_report_tta/predictions.csv
  else
    train_eval "$run" "$tag" "$run" "$D/split/train.csv" "$D/split/val.csv" "$D/split/test.csv" \
      --epochs "$EPOCHS" --lr "${LR:-3e-4}" "${EXTRA[@]}"
    val_predictions=$EXP/$run/val_predictions.csv
  fi
  for modality in hand face; do   # per modality, from the predictions already made (no second forward pass)
    timed "evaluate_${run}_$modality" ugn evaluate --predictions "$EXP/$run/report/predictions.csv" \
      --modality "$modality" --threshold-from "$val_predictions" --seed "$SEED" \
      --output "$EXP/$run/report_$modality" --no-registry
  done
done
finish_experiment
