#!/bin/bash
# The GPU check of issue #18 as one command: `ugn bench all` (bench train for resnet18 and tf_efficientnetv2_s,
# the hot loop's GPU syncs, bench predict against the model's ceiling, a short LFW training with compile on/off
# and bf16/fp32 + `ugn evaluate`, device facts and peak memory) -> one JSON file and its Markdown twin.
# About 6 minutes on one recent GPU; killed after UGN_CHECK_TIMEOUT seconds (default 480; 0 = no limit, the
# default of a --dry-run, whose speed depends on the CPU and its load).
# Without a GPU (or with --dry-run) it prints the plan and runs every phase on the CPU with tiny settings.
# Usage:  bash scripts/gpu_check.sh [-o RESULT.json] [--data LFW_FOLDER] [--dry-run] [--overwrite]
#         sbatch scripts/gpu_check.sh -o gpu_check.json
# Env: UGN (how to run ugn; default `ugn`, e.g. "python -m unifiedgender"), UGN_DATA (folder holding lfw_gender/),
#      UGN_WEIGHTS_DIR (offline ImageNet weights; default: weights/ beside UGN_DATA, shared/weights, ../shared/weights).
#SBATCH --job-name=ugn-gpu-check
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gpus=1
#SBATCH --cpus-per-task=8
#SBATCH --time=00:15:00
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
read -r -a UGN_CMD <<< "${UGN:-ugn}"
if ! command -v "${UGN_CMD[0]}" >/dev/null 2>&1; then
  echo "'${UGN_CMD[0]}' not found: activate the environment with unifiedgender installed, or set UGN" >&2; exit 2
fi
if [ -z "${UGN_WEIGHTS_DIR:-}" ]; then
  for dir in ${UGN_DATA:+"$UGN_DATA/../weights"} shared/weights ../shared/weights; do
    if [ -d "$dir" ]; then export UGN_WEIGHTS_DIR=$dir; break; fi
  done
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
LIMIT=480
for arg in "$@"; do [ "$arg" = --dry-run ] && LIMIT=0; done
exec timeout "${UGN_CHECK_TIMEOUT:-$LIMIT}" "${UGN_CMD[@]}" bench all "$@"
