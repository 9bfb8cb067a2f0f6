"""Eight processes write their trials' results into one sweep directory at the same moment (nested
run dirs sharing parents, each rewritten many times, as running -> success) while another process
keeps reading the sweep with the report's own reader (`lora_lab.results.collect.collect`, which
marks an unreadable or truncated file ``corrupt`` instead of failing): it never sees a corrupt
record, and at the end the report counts all eight trials, complete."""

import multiprocessing as mp
import time
from pathlib import Path

from lora_lab.results.collect import collect
from lora_lab.results.record import read_result

N_PROCS, REWRITES = 8, 40


def run_name(i: int) -> str:
    return f"synthetic/tiny_bert/lora-r{2 ** (i % 4)}-a16-kaiming-qv/lr0.001-seed{i}"


def writer(sweep: str, i: int, start: float) -> None:
    from lora_lab.results.record import write_result
    from lora_lab.resume.lock import RunLock

    run_dir = Path(sweep) / run_name(i)
    while time.time() < start:
        pass
    with RunLock(run_dir) as lock:
        assert lock.acquired
        for k in range(REWRITES):
            write_result(run_dir, {"status": "running", "run_name": run_name(i), "writer": i, "k": k, "curve": [{"step": s, "w": i} for s in range(2000)]})
        write_result(run_dir, {"status": "success", "run_name": run_name(i), "writer": i, "k": REWRITES, "curve": [{"step": s, "w": i} for s in range(2000)]})


def reader(sweep: str, done, out) -> None:
    reads, errors = 0, []
    while not done.is_set():
        try:
            trials = collect([sweep]).trials
        except FileNotFoundError:  # the sweep dir does not exist yet
            continue
        except Exception as err:  # the reader tripping over something a writer left
            errors.append(repr(err))
            continue
        reads += len(trials)
        errors += [f"{r.run_dir}: {r.reason}" for r in trials.itertuples() if r.status == "corrupt"]
    out.put((reads, errors))


def test_eight_writers_one_sweep_dir(tmp_path):
    sweep = str(tmp_path / "study")
    ctx = mp.get_context("spawn")
    start = time.time() + 3.0  # all writers leave the starting line together
    procs = [ctx.Process(target=writer, args=(sweep, i, start)) for i in range(N_PROCS)]
    out, done = ctx.Queue(), ctx.Event()
    watcher = ctx.Process(target=reader, args=(sweep, done, out))
    for p in procs + [watcher]:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    done.set()
    reads, errors = out.get(timeout=60)
    watcher.join(timeout=60)
    assert not errors, errors[:3]
    assert reads > 0  # the reader saw records while they were being rewritten

    trials = collect([sweep]).trials  # what `lora-lab report` counts
    assert len(trials) == N_PROCS and trials["status"].value_counts().to_dict() == {"success": N_PROCS}
    assert sorted(trials["run_dir"]) == sorted(str(Path(sweep) / run_name(i)) for i in range(N_PROCS))
    for i in range(N_PROCS):
        record = read_result(Path(sweep) / run_name(i))
        assert record["writer"] == i and record["k"] == REWRITES and len(record["curve"]) == 2000
