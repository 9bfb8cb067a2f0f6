"""Issue 24, class 6: ``kill -9`` of a parallel sweep's process takes its loky workers and resource
trackers down within seconds (`lora_lab.run.parent_watch`). A real ``lora-lab train --multirun
hydra/launcher=parallel`` of two long tiny trials; the process tree is read from /proc."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, out, todo = children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.real
def test_kill_9_of_a_parallel_sweep_takes_its_workers_down(tmp_path):
    env = {**os.environ, "LORA_LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    args = ["train", "--multirun", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "debug=tiny", "seed=0,1",
            "trainer.max_epochs=500", "task.max_train_samples=64", "task.max_eval_samples=16", "test_after_fit=false",
            "progress.mode=none"]
    log = open(tmp_path / "log.txt", "w")
    sweep = subprocess.Popen([sys.executable, "-m", "lora_lab.cli", *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    tree: set[int] = set()
    try:
        deadline = time.time() + 300
        results = []
        while time.time() < deadline and sweep.poll() is None:
            results = list((tmp_path / "runs").rglob("result.json"))
            if len(results) == 2 and all(json.loads(p.read_text() or "{}").get("status") == "running" for p in results):
                break
            time.sleep(0.5)
        assert len(results) == 2, (tmp_path / "log.txt").read_text()[-3000:]
        time.sleep(2)  # both workers are training
        tree = descendants(sweep.pid)
        workers = {int(json.loads(p.read_text())["job"]["pid"]) for p in results}
        assert workers <= tree and len(tree) >= 3, (tree, workers)  # 2 workers + at least one resource tracker
        os.kill(sweep.pid, signal.SIGKILL)
        sweep.wait(timeout=10)
        killed_at = time.time()
        while time.time() - killed_at < 20 and any(alive(p) for p in tree):
            time.sleep(0.2)
        left = sorted(p for p in tree if alive(p))
        assert left == [], [(p, Path(f"/proc/{p}/cmdline").read_bytes()[:200]) for p in left]
        took = time.time() - killed_at
        assert took < 15, took  # poll 0.5 s + grace 5 s + the trackers' EOF
        for path in results:  # each trial stopped on the SIGTERM its watcher sent: recorded, or left running to resume
            assert json.loads(path.read_text())["status"] in ("cancelled", "running")
    finally:
        for pid in tree | descendants(sweep.pid) | {sweep.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
