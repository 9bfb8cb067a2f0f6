"""Eight processes write their trials' results into one sweep directory at the same moment (nested
run dirs sharing parents, each rewritten many times, as running -> success) while another process
keeps reading the sweep like the report does: no read ever fails, and at the end all eight records
are there, complete, and counted. (The report command of issue 7 is not merged yet; this counts with
`lora_lab.results.summary.rows`, which reads every result.json below a root like the report will.)"""

import multiprocessing as mp
import time
from pathlib import Path

from lora_lab.results.record import read_result
from lora_lab.results.summary import rows

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
            reads += len(rows([sweep]))
        except Exception as err:  # a torn file or a reader tripping over a temp file
            errors.append(repr(err))
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

    table = rows([sweep])
    assert len(table) == N_PROCS and {r["status"] for r in table} == {"success"}
    assert sorted(r["run"] for r in table) == sorted(run_name(i) for i in range(N_PROCS))
    for i in range(N_PROCS):
        record = read_result(Path(sweep) / run_name(i))
        assert record["writer"] == i and record["k"] == REWRITES and len(record["curve"]) == 2000
