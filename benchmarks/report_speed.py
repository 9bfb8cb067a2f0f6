"""How long ``lora-lab report`` takes over a large sweep: N result.json files (each with the full
resolved config of a trial and a 20-point validation curve), read, grouped, tested and plotted by a
fresh ``lora-lab report`` process, start to finish as a user runs it.

The records are fabricated (``tests.results.fake_results.make_record`` with the composed ``train``
config merged in, so each file is as large as a real one): 4 methods x 5 tasks x 6 ranks x 3 learning
rates x up to 14 seeds, the first N of them. The report's output is checked before its time is used
(every trial counted as a success, one table row per method and rank).

Timing: wall time of the whole process (interpreter start, imports, reading, statistics, tables,
figures, index.html) and its CPU time (``RUSAGE_CHILDREN`` user + sys), ``--rounds`` times, each into a
fresh output directory. The target the project set itself: 5,000 records in under 10 s on an idle
core (this was once a timed test; a wall-clock limit belongs in a measured table, not in the suite).

Run:  python benchmarks/report_speed.py --out benchmarks/results/report_speed_cpu.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.e2e_trial import cpu_model, timed  # noqa: E402

METHODS = ("lora", "dora", "adalora", "pissa")
TASKS = ("glue_sst2", "glue_rte", "glue_mrpc", "glue_cola", "synthetic")
RANKS = (1, 2, 4, 8, 16, 64)
LRS = (2.5e-4, 5e-4, 1e-3)
SEEDS = 14
TARGET_S = 10.0  # for 5,000 records


def full_config() -> dict:
    """The composed ``train`` config, resolved: what a real result.json carries under ``config``."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from lora_lab.config.compose import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return OmegaConf.to_container(compose("train", overrides=["study=speed"]), resolve=True)


def write_records(root: Path, n: int) -> int:
    """Write the first ``n`` records of the grid under ``root/speed``; returns how many were written."""
    from tests.results.fake_results import make_record

    full = full_config()
    written = 0
    grid = ((m, t, r, lr, s) for m in METHODS for t in TASKS for r in RANKS for lr in LRS for s in range(SEEDS))
    for method, task, r, lr, seed in grid:
        if written == n:
            break
        record = make_record(task=task, method=method, seed=seed, lr=lr, r=r, val=0.6 + 0.001 * (written % 97), test=0.6,
                             curve=[0.5 + 0.01 * i for i in range(20)], study="speed")
        record["config"] = {**full, **record["config"], "task": {**full["task"], **record["config"]["task"]},
                            "adapter": {**full["adapter"], **record["config"]["adapter"]}}
        run_dir = root / "speed" / record["run_name"]
        run_dir.mkdir(parents=True)
        (run_dir / "result.json").write_text(json.dumps(record, indent=2))
        written += 1
    return written


def expected_rows(n: int) -> int:
    """Table rows the report must print for the first ``n`` records: one per (method, rank) reached."""
    per_rank = len(LRS) * SEEDS
    per_task = len(RANKS) * per_rank
    per_method = len(TASKS) * per_task
    full_methods, rest = divmod(n, per_method)
    if rest >= per_task:  # the partial method reached every rank
        return (full_methods + 1) * len(RANKS)
    return full_methods * len(RANKS) + -(-rest // per_rank)


def check_output(stdout: str, n: int) -> None:
    """The report counted every trial and printed one row per method and rank (header row included)."""
    if f"Trials: {n} ({n} success" not in stdout:
        raise SystemExit(f"the report did not count {n} successful trials:\n{stdout[-2000:]}")
    rows = stdout.count("\n| ") - 1
    if rows != expected_rows(n):
        raise SystemExit(f"the report printed {rows} table rows, expected {expected_rows(n)}:\n{stdout[-2000:]}")


def main(argv: list[str] | None = None) -> list[tuple[float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="result.json files (at most 5040)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--note", default="", help="a sentence about the machine's load, written into the table")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    capacity = len(METHODS) * len(TASKS) * len(RANKS) * len(LRS) * SEEDS
    if not 0 < args.n <= capacity:
        parser.error(f"--n: {args.n}; allowed 1..{capacity}")
    started = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    times = []
    with tempfile.TemporaryDirectory(prefix="report_speed_") as tmp:
        root = Path(tmp) / "runs"
        if write_records(root, args.n) != args.n:
            raise SystemExit("fewer records written than asked for")
        size_mb = sum(p.stat().st_size for p in root.rglob("result.json")) / 2**20
        load_before = os.getloadavg()
        for i in range(args.rounds):
            cmd = [sys.executable, "-m", "lora_lab.cli", "report", str(root), "--out", str(Path(tmp) / f"out{i}")]
            wall, cpu, proc = timed(cmd, env)
            check_output(proc.stdout, args.n)
            times.append((wall, cpu))
        load_after = os.getloadavg()
    lines = [
        "# `lora-lab report` over a large sweep (CPU)", "",
        f"Generated by `benchmarks/report_speed.py` in {time.perf_counter() - started:.0f} s: "
        f"`python benchmarks/report_speed.py --n {args.n} --rounds {args.rounds}`.",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after.",
        *([f"Note: {args.note}"] if args.note else []), "",
        f"Work: {args.n} fabricated result.json files ({size_mb:.1f} MiB: the full resolved config, a 20-point curve each), "
        "one fresh `lora-lab report` process per round (imports, reading, statistics, table, figures, index.html); "
        "each round's output checked (every trial a success, one row per method and rank). CPU = user + sys.", "",
        "| round | wall s | CPU s |", "|---|---:|---:|",
        *(f"| {i + 1} | {w:.2f} | {c:.2f} |" for i, (w, c) in enumerate(times)), "",
        f"Median: **{statistics.median(w for w, _ in times):.2f} s wall**, {statistics.median(c for _, c in times):.2f} s CPU, "
        f"{1000 * statistics.median(w for w, _ in times) / args.n:.2f} ms per record; "
        f"the project's target is {TARGET_S * args.n / 5000:.1f} s for {args.n} records ({TARGET_S:.0f} s per 5,000).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return times


if __name__ == "__main__":
    main()
