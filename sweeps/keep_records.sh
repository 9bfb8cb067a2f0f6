#!/usr/bin/env bash
# Keep the small files of every finished trial of a study in the repository, so that its table can be
# rebuilt from the repository alone and a study that spans several sittings (or machines) resumes
# where it stopped.
#
#   bash sweeps/keep_records.sh RUNS_DIR RECORDS_DIR [UNFINISHED_DIR]     # e.g. runs/glue_minilm results/glue_minilm_records
#   bash sweeps/keep_records.sh --restore RECORDS_DIR RUNS_DIR [UNFINISHED_DIR]
#
# Kept per successful trial (same relative path under RECORDS_DIR): result.json, the per-example
# predictions (predictions_*.jsonl: the report's paired bootstrap reads them), logs/metrics.csv (the
# learning curves), train.log (what the run printed; the study page links to it) and
# .hydra/overrides.yaml; a few tens of KB per trial. Also the study's sweep_plan.json, so a report of
# a partial study lists its missing trials. Not kept: checkpoints and adapters.
# `lora-lab report RECORDS_DIR --out DIR` gives the same table as the runs themselves.
# UNFINISHED_DIR (optional): a trial stopped part-way (not a success, and it has checkpoints/last.ckpt)
# is kept there whole -- checkpoint, config, logs; a few MB -- replacing an older copy, so a trial
# longer than a sitting resumes from its checkpoint on the next machine instead of starting again; a
# copy whose trial has since succeeded (or failed) is removed from it. Failed trials are not kept: a
# rerun starts them afresh.
# --restore copies the records back into a runs dir without overwriting anything there, then each
# unfinished trial whose run dir does not exist there yet; a rerun of the study then finds those
# trials finished (their result.json holds the config they ran), resumes the unfinished ones from
# their checkpoints and runs only the rest.
set -euo pipefail
not_a_run() {  # a trial's own directory (it holds result.json) is never a records or runs dir: nothing is written into it
  if [ -e "$2/result.json" ]; then
    echo "error: $1: $2 is a trial's run directory (it holds result.json); allowed: a study's runs or records directory" >&2
    exit 2
  fi
}
ended() {  # the record in run dir $1 has a top-level "status" matching $2 (an ERE) (result.json is written with indent 2;
  # a nested "status" -- of a tracker, an earlier attempt -- is indented deeper and never counts)
  [ -f "$1/result.json" ] && grep -qE "^  \"status\": \"($2)\"" "$1/result.json"
}
copy_run() {  # the whole run dir $1 into $2 (created), without the run locks of the process that held it
  mkdir -p "$2"
  tar -C "$1" --exclude='./.lock-rank*' -cf - . | tar -C "$2" -xf -
}
unfinished_runs() {  # the run dirs under $1 that hold a resume checkpoint, NUL-separated
  find -L "$1" -path "*/checkpoints/last.ckpt" -not -path "*/snapshots/*" -print0 | sort -z | while IFS= read -r -d '' ckpt; do
    printf '%s\0' "$(dirname "$(dirname "$ckpt")")"
  done
}
if [ "${1:-}" = "--restore" ]; then
  [ $# -eq 3 ] || [ $# -eq 4 ] || { echo "usage: bash sweeps/keep_records.sh --restore RECORDS_DIR RUNS_DIR [UNFINISHED_DIR]" >&2; exit 2; }
  [ -d "$2" ] || { echo "error: RECORDS_DIR: $2 is not a directory" >&2; exit 2; }
  not_a_run RUNS_DIR "$3"
  mkdir -p "$3"
  cp -rn "$2/." "$3/"
  if [ $# -eq 4 ] && [ -d "$4" ]; then
    restored=0
    while IFS= read -r -d '' kept; do
      rel=${kept#"$4"/}
      [ -e "$3/$rel" ] && continue  # never over a run dir that exists (a finished record, or a live run)
      copy_run "$kept" "$3/$rel"
      restored=$((restored + 1))
    done < <(unfinished_runs "$4")
    echo "restored $restored unfinished trials from $4"
  fi
  exit 0
fi
[ $# -eq 2 ] || [ $# -eq 3 ] || { echo "usage: bash sweeps/keep_records.sh RUNS_DIR RECORDS_DIR [UNFINISHED_DIR]" >&2; exit 2; }
runs=$1
records=$2
unfinished=${3:-}
[ -d "$runs" ] || { echo "error: RUNS_DIR: $runs is not a directory" >&2; exit 2; }
not_a_run RECORDS_DIR "$records"
[ -z "$unfinished" ] || not_a_run UNFINISHED_DIR "$unfinished"
mkdir -p "$records"  # even with no finished trial yet: --restore reads it
kept=0
while IFS= read -r -d '' result; do
  run=$(dirname "$result")
  ended "$run" success || continue
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
[ -n "$unfinished" ] || exit 0
parked=0
while IFS= read -r -d '' run; do
  rel=${run#"$runs"/}
  ended "$run" "success|failed" && continue
  rm -rf "${unfinished:?}/$rel"
  copy_run "$run" "$unfinished/$rel"
  parked=$((parked + 1))
done < <(unfinished_runs "$runs")
dropped=0
if [ -d "$unfinished" ]; then  # copies of trials that have since ended (or whose run dir is gone from RUNS_DIR and kept as a record)
  while IFS= read -r -d '' kept; do
    rel=${kept#"$unfinished"/}
    if [ -f "$records/$rel/result.json" ] || ended "$runs/$rel" "success|failed"; then
      rm -rf "${unfinished:?}/$rel"
      dropped=$((dropped + 1))
    fi
  done < <(unfinished_runs "$unfinished")
fi
echo "kept $parked unfinished trials in $unfinished (removed $dropped that have since ended)"
