#!/usr/bin/env bash
# The `analysis_minilm` study end to end (sweeps/analysis_minilm.yaml): both sweeps, the analyses
# (lora-lab analyze) and the report with its analysis section, into results/analysis_minilm/.
#
#   bash sweeps/analysis_minilm.sh /path/to/glue_data [hydra overrides...]
#   DRY_RUN=1 bash sweeps/analysis_minilm.sh /path/to/glue_data     # list the trials, print the commands
#
# /path/to/glue_data holds MRPC/ with the original train.tsv and dev.tsv (never part of this repository).
# Runs go to $LORA_LAB_RUNS/analysis_minilm (default runs/analysis_minilm; snapshots included, ~80 MB per
# full fine-tuning run); the report and analyses go to $OUT (default results/analysis_minilm); the small
# files of every finished trial (result.json, dev predictions, metrics.csv, train.log) go to $RECORDS
# (default results/analysis_minilm_records, committed: sweeps/keep_records.sh), and the report is built
# from them, so the committed page links each trial's result and log inside the repository. The
# analyses read the adapter snapshots, which only the runs dir holds.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "error: GLUE_DATA: missing; usage: bash sweeps/analysis_minilm.sh /path/to/glue_data [overrides...]" >&2; exit 2; }
data=$1
shift
[ -d "$data" ] || { echo "error: GLUE_DATA: $data is not a directory" >&2; exit 2; }
lab=${LORA_LAB_CLI:-.venv/bin/lora-lab}
runs=${LORA_LAB_RUNS:-runs}/analysis_minilm
out=${OUT:-results/analysis_minilm}
records=${RECORDS:-results/analysis_minilm_records}
sweep=("$lab" sweep analysis_minilm "task.data_dir=$data" hydra/launcher=parallel)
rank64=(adapter=lora adapter.r=64 "seed=0,1")
analyze=("$lab" analyze "$runs" --out "$out/analysis")
report=("$lab" report "$records" --out "$out" --baseline lora)
if [ "${DRY_RUN:-0}" = 1 ]; then
  "${sweep[@]}" dry_run=true "$@"
  "${sweep[@]}" "${rank64[@]}" dry_run=true "$@"
  echo "analyze: ${analyze[*]}"
  echo "report: ${report[*]}"
  exit 0
fi
status=0
"${sweep[@]}" "$@" || status=$?
"${sweep[@]}" "${rank64[@]}" "$@" || status=$?
"${analyze[@]}"
bash sweeps/keep_records.sh "$runs" "$records"
"${report[@]}"
exit "$status"
