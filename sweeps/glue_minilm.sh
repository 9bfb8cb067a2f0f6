#!/usr/bin/env bash
# The `glue_minilm` study end to end (sweeps/glue_minilm.yaml): the sweep, the records of its finished
# trials, then its report from those records in results/glue_minilm/ (table with significance marks,
# figures, index.html).
#
#   bash sweeps/glue_minilm.sh /path/to/glue_data [hydra overrides...]
#   DRY_RUN=1 bash sweeps/glue_minilm.sh /path/to/glue_data     # list the 96 trials, print the report command
#
# /path/to/glue_data holds CoLA/, MRPC/, RTE/, STS-B/ with the original train.tsv and dev.tsv (never
# part of this repository). Trials run with the parallel launcher (2 jobs x 1 thread; on a bigger
# machine add hydra.launcher.n_jobs=8). A rerun skips finished trials. Runs go to
# $LORA_LAB_RUNS/glue_minilm (default runs/glue_minilm); the report goes to $OUT (default results/glue_minilm);
# the small files of every finished trial (result.json, dev predictions, metrics.csv) go to $RECORDS
# (default results/glue_minilm_records, committed), and are copied back into the runs dir first, so the
# study resumes from the repository alone when it spans sittings or machines (sweeps/keep_records.sh);
# a trial stopped part-way (an RTE trial outlasts a sitting on a slow CPU) is kept whole, checkpoint
# included, in $UNFINISHED (default results/glue_minilm_unfinished, committed) and resumes from there.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "error: GLUE_DATA: missing; usage: bash sweeps/glue_minilm.sh /path/to/glue_data [overrides...]" >&2; exit 2; }
data=$1
shift
[ -d "$data" ] || { echo "error: GLUE_DATA: $data is not a directory" >&2; exit 2; }
lab=${LORA_LAB_CLI:-.venv/bin/lora-lab}
runs=${LORA_LAB_RUNS:-runs}/glue_minilm
out=${OUT:-results/glue_minilm}
records=${RECORDS:-results/glue_minilm_records}  # the small files of each finished trial, committed (sweeps/keep_records.sh)
unfinished=${UNFINISHED:-results/glue_minilm_unfinished}  # trials stopped part-way, whole (checkpoints), committed
# the report reads the kept records (with the sweep plan: missing trials are counted), so the committed
# page's links to each trial's result.json and train.log resolve inside the repository
report=("$lab" report "$records" --out "$out" --baseline lora)  # no --cost: shared cores, wall times are no speed measurement
if [ "${DRY_RUN:-0}" = 1 ]; then
  "$lab" sweep glue_minilm "task.data_dir=$data" hydra/launcher=parallel dry_run=true "$@"
  echo "report: ${report[*]}"
  exit 0
fi
status=0
if [ -d "$records" ]; then  # trials finished in an earlier sitting (or on another machine) are not run again
  bash sweeps/keep_records.sh --restore "$records" "$runs" "$unfinished"
fi
"$lab" sweep glue_minilm "task.data_dir=$data" hydra/launcher=parallel "$@" || status=$?  # failed trials are listed by the report
bash sweeps/keep_records.sh "$runs" "$records" "$unfinished"
"${report[@]}"
exit "$status"
