#!/usr/bin/env bash
# Do two commits compute the same numbers? A study that spans sittings averages runs of several commits
# (its table's code-version note lists them); this runs one short trial at an older commit REV (in a
# temporary worktree) and at this checkout, with the same overrides, one thread each, and compares what
# the trial computed byte for byte: logs/metrics.csv (the training loss and learning rate of every step
# -- trainer.log_every_n_steps=1 unless you override it -- and every evaluation) and predictions_*.jsonl
# (every dev / test prediction).
#
#   bash sweeps/same_numbers.sh REV [overrides...]
#   bash sweeps/same_numbers.sh df89460 backbone=minilm task=glue_cola task.data_dir=/path/to/glue_data \
#       adapter=dora trainer.max_steps=40 trainer.val_check_interval=20 task.max_eval_samples=300
#
# Prints "same numbers" (exit 0) or the first differing file (exit 1). Both trials write under a
# temporary directory that is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bash sweeps/same_numbers.sh REV [overrides...]" >&2; exit 2; }
rev=$1
shift
git rev-parse --verify -q "$rev^{commit}" > /dev/null || { echo "error: REV: $rev is not a commit of this repository" >&2; exit 2; }
python=${LORA_LAB_PYTHON:-$PWD/.venv/bin/python}
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/old" > /dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add -q --detach "$tmp/old" "$rev"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
for side in old new; do
  code=$PWD
  [ "$side" = old ] && code=$tmp/old
  (cd "$code" && PYTHONPATH=$code "$python" -m lora_lab.train trainer.log_every_n_steps=1 "$@" "hydra.run.dir=$tmp/$side.run" > "$tmp/$side.log" 2>&1) || {
    echo "error: the trial at $side ($code) failed; its output:" >&2
    tail -n 20 "$tmp/$side.log" >&2
    exit 1
  }
done
compared=()
for file in logs/metrics.csv $(cd "$tmp/new.run" && ls predictions_*.jsonl 2> /dev/null); do
  if ! cmp -s "$tmp/old.run/$file" "$tmp/new.run/$file"; then
    echo "different numbers: $file differs between $rev and this checkout"
    exit 1
  fi
  compared+=("$file")
done
echo "same numbers: $rev and this checkout ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- lora_lab conf || echo ', with uncommitted changes')) agree byte for byte on ${compared[*]}"
