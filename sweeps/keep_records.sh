#!/usr/bin/env bash
# Keep the small files of every finished trial of a study in the repository, so that its table can be
# rebuilt from the repository alone and a study that spans several sittings (or machines) resumes
# where it stopped.
#
#   bash sweeps/keep_records.sh RUNS_DIR RECORDS_DIR     # e.g. runs/glue_minilm results/glue_minilm_records
#   bash sweeps/keep_records.sh --restore RECORDS_DIR RUNS_DIR
#
# Kept per successful trial (same relative path under RECORDS_DIR): result.json, the per-example
# predictions (predictions_*.jsonl: the report's paired bootstrap reads them), logs/metrics.csv (the
# learning curves), train.log (what the run printed; the study page links to it) and
# .hydra/overrides.yaml; a few tens of KB per trial. Also the study's sweep_plan.json, so a report of
# a partial study lists its missing trials. Not kept: checkpoints and adapters.
# `lora-lab report RECORDS_DIR --out DIR` gives the same table as the runs themselves.
# --restore copies the records back into a runs dir without overwriting anything there; a rerun of
# the study then finds those trials finished (their result.json holds the config they ran) and runs
# only the rest.
set -euo pipefail
not_a_run() {  # a trial's own directory (it holds result.json) is never a records or runs dir: nothing is written into it
  if [ -e "$2/result.json" ]; then
    echo "error: $1: $2 is a trial's run directory (it holds result.json); allowed: a study's runs or records directory" >&2
    exit 2
  fi
}
if [ "${1:-}" = "--restore" ]; then
  [ $# -eq 3 ] || { echo "usage: bash sweeps/keep_records.sh --restore RECORDS_DIR RUNS_DIR" >&2; exit 2; }
  [ -d "$2" ] || { echo "error: RECORDS_DIR: $2 is not a directory" >&2; exit 2; }
  not_a_run RUNS_DIR "$3"
  mkdir -p "$3"
  cp -rn "$2/." "$3/"
  exit 0
fi
[ $# -eq 2 ] || { echo "usage: bash sweeps/keep_records.sh RUNS_DIR RECORDS_DIR" >&2; exit 2; }
runs=$1
records=$2
[ -d "$runs" ] || { echo "error: RUNS_DIR: $runs is not a directory" >&2; exit 2; }
not_a_run RECORDS_DIR "$records"
kept=0
while IFS= read -r -d '' result; do
  run=$(dirname "$result")
  grep -q '"status": "success"' "$result" || continue
  rel=${run#"$runs"/}
  mkdir -p "$records/$rel"
  for file in result.json logs/metrics.csv train.log .hydra/overrides.yaml "$run"/predictions_*.jsonl; do
    file=${file#"$run"/}
    [ -f "$run/$file" ] || continue
    mkdir -p "$(dirname "$records/$rel/$file")"
    cp "$run/$file" "$records/$rel/$file"
  done
  kept=$((kept + 1))
done < <(find -L "$runs" -name result.json -not -path "*/snapshots/*" -print0 | sort -z)
if [ -f "$runs/sweep_plan.json" ]; then  # the planned trials: a partial study's report counts the missing ones
  mkdir -p "$records"
  cp "$runs/sweep_plan.json" "$records/sweep_plan.json"
fi
echo "kept the records of $kept finished trials in $records"
