"""Bad input, as users type it: every case is a real ``.venv/bin/lora-lab`` call on a tiny model and
must end with exit status 2, exactly one ``error:`` line naming the key, no traceback, and every file
of the previously finished run (whose run name most cases share) byte-identical afterwards. A bad
``train`` command line is answered by `lora_lab.run.gate` before the trial code is imported or any model
loads, so each case costs one interpreter start-up and a config compose (run 2 at a time). Even
``adapter.targets`` matching no module is answered there: the gate attaches the method to the model
built on PyTorch's meta device (shapes only, no weights), so no case writes anything anywhere.

The test prints its counts (cases, clear errors, tracebacks, silent accepts, files changed).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LORA_LAB = str(Path(sys.executable).parent / "lora-lab")
NO_SUCH_TARGET = "nothing_like_this"  # checked against the module names of the meta-device model
TINY = ["debug=tiny", "task.max_train_samples=32", "task.max_eval_samples=16", "task.batch_size=8", "trainer.max_epochs=1"]


def env_for(tmp: Path) -> dict:
    return {**os.environ, "LORA_LAB_RUNS": str(tmp / "runs"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def lora_lab(tmp: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([LORA_LAB, *args], cwd=ROOT, env=env_for(tmp), capture_output=True, text=True, timeout=600, **kwargs)


def write_rte(root: Path, header_only: bool = False, missing_column: bool = False) -> Path:
    folder = root / "RTE"
    folder.mkdir(parents=True)
    header = "index\tsentence1\tlabel\n" if missing_column else "index\tsentence1\tsentence2\tlabel\n"
    for split in ("train", "dev"):
        rows = "" if header_only else "".join(f"{i}\tpremise {i}\thypothesis {i}\tentailment\n" for i in range(8))
        (folder / f"{split}.tsv").write_text(header + rows)
    return root


def train(*overrides: str) -> list[str]:
    return ["train", *TINY, *overrides]


def cases(tmp: Path) -> list[tuple[str, str, list[str]]]:
    """(group, key the error line must name, argv)."""
    empty = write_rte(tmp / "glue_empty", header_only=True)
    nocol = write_rte(tmp / "glue_nocol", missing_column=True)
    run = str(tmp / "runs")
    return [
        # adapter knobs
        ("adapter", "adapter.r", train("adapter.r=0")),
        ("adapter", "adapter.alpha", train("adapter.alpha=-1")),
        ("adapter", "adapter.method", train("adapter.method=nope")),
        ("adapter", "adapter.rank", train("adapter.rank=8")),
        ("adapter", "adapter.target_r", train("adapter.target_r=4")),
        ("adapter", "adapter.rank", train("+adapter.rank=8")),
        ("adapter", "adapter.init", train("adapter.init=nope")),
        ("adapter", "adapter.targets", train(f"adapter.targets=[{NO_SUCH_TARGET}]")),
        ("adapter", "adapter", train("adapter=lorra")),
        ("adapter", "adapter.dropout", train("adapter.dropout=1.5")),
        # task and data files
        ("task", "task", train("task=nope")),
        ("task", "task.data_dir", train("task=glue_rte", "task.data_dir=/missing/glue")),
        ("task", "task.data_dir", train("task=glue_rte", f"task.data_dir={empty}")),
        ("task", "task.data_dir", train("task=glue_rte", f"task.data_dir={nocol}")),
        ("task", "task.max_train_samples", train("task.max_train_samples=0")),
        ("task", "task.batch_size", train("task.batch_size=0")),
        ("task", "task.max_length", train("task.max_length=-1")),
        ("task", "task.negation_rate", train("task.negation_rate=2")),
        # backbone
        ("backbone", "backbone", train("backbone=nope")),
        ("backbone", "backbone.name", train("backbone=hub", "backbone.name=/missing/model")),
        ("backbone", "backbone.dtype", train("backbone.dtype=int8")),
        ("backbone", "backbone.colour", train("+backbone.colour=red")),
        # trainer
        ("trainer", "trainer.precision", train("trainer.precision=bf16-true")),
        ("trainer", "trainer.accumulate_grad_batches", train("trainer.accumulate_grad_batches=0")),
        ("trainer", "trainer.max_steps", train("trainer.max_steps=0")),
        ("trainer", "trainer.max_epochs", train("trainer.max_epochs=0")),
        ("trainer", "trainer.val_check_interval", train("trainer.val_check_interval=0")),
        ("trainer", "trainer.maxsteps", train("trainer.maxsteps=5")),
        # optim
        ("optim", "optim.lr", train("optim.lr=abc")),
        ("optim", "optim.lr", train("optim.lr=-1")),
        ("optim", "optim.lr", train("lr_scale=-1")),
        ("optim", "optim.scheduler", train("optim.scheduler=cosin")),
        ("optim", "optim.lrr", train("+optim.lrr=1e-3")),
        ("optim", "optim.warmup_ratio", train("optim.warmup_ratio=1.5")),
        ("optim", "optim.betas", train("optim.betas=[0.9]")),
        # seeds
        ("seed", "seed", train("seed=abc")),
        ("seed", "seed", train("seed=-5")),
        ("seed", "seed", train("seed=1.5")),
        # launcher and run control
        ("launcher", "hydra/launcher", train("hydra/launcher=nope")),
        ("launcher", "resume.every_n_minutes", train("resume.every_n_minutes=0")),
        ("launcher", "resume.every_n_step", train("+resume.every_n_step=3")),
        ("launcher", "force", train("force=maybe")),
        ("launcher", "paths.runs_root", train(f"paths.runs_root={tmp / 'a_file'}")),
        # sweep
        ("sweep", "study", ["sweep", "nope"]),
        ("sweep", "dry_run", ["sweep", "quick", "dry_run=maybe"]),
        ("sweep", "debug", ["sweep", "quick", "debug=tiny", "dry_run=true"]),
        ("sweep", "adapter.r", ["sweep", "quick", "adapter.r=0", "dry_run=true"]),
        # report
        ("report", "PATH", ["report", str(tmp / "nothing_here")]),
        ("report", "--format", ["report", run, "--format", "docx", "--out", str(tmp / "report")]),
        # export
        ("export", "export.run_dir", ["export", str(tmp / "nothing_here"), str(tmp / "out")]),
        ("export", "export.format", ["export", run, str(tmp / "out"), "--format", "onnx"]),
    ]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_bad_input_battery(tmp_path):
    finished = lora_lab(tmp_path, *train())
    assert finished.returncode == 0, finished.stderr[-3000:]
    (tmp_path / "a_file").write_text("a runs root that is a file")
    before = snapshot(tmp_path / "runs")
    battery = cases(tmp_path)
    with ThreadPoolExecutor(max_workers=2) as pool:  # each worker waits on one subprocess
        procs = list(pool.map(lambda case: lora_lab(tmp_path, *case[2]), battery))
    groups = {group for group, _, _ in battery}
    assert len(battery) >= 40 and groups == {"adapter", "task", "backbone", "trainer", "optim", "seed", "launcher", "sweep", "report", "export"}
    clear, tracebacks, silent, problems = 0, 0, 0, []
    for (group, key, argv), proc in zip(battery, procs):
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
        tracebacks += "Traceback" in proc.stderr
        silent += proc.returncode == 0
        ok = proc.returncode == 2 and len(errors) == 1 and errors[0].startswith(f"error: {key}") and "Traceback" not in proc.stderr
        clear += ok
        if not ok:
            problems.append(f"{' '.join(argv[1:] if argv[0] == 'train' else argv)} -> exit {proc.returncode}: {proc.stderr.strip()[-400:]}")
    after = snapshot(tmp_path / "runs")
    changed = sorted(k for k in before if before[k] != after.get(k))  # files of the finished run
    new = sorted(set(after) - set(before))
    print(f"\nbad-input battery: {len(battery)} cases, {clear} clear errors, {tracebacks} tracebacks, {silent} silent accepts, "
          f"{len(changed)} files changed ({len(new)} new files in other run dirs)")
    assert not problems, "\n".join(problems)
    assert not changed, changed
    assert not new, new  # no case wrote anything anywhere, the target selection included


@pytest.mark.slow
def test_full_disk_is_one_line_naming_the_path_and_cause(tmp_path):
    """A write that the OS refuses mid-run (here: a file-size limit, EFBIG, as a stand-in for ENOSPC)
    ends with one line naming the file and the cause, and the failure record says the same."""
    import json

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))  # result.json fits, last.ckpt (66 KB) does not

    proc = lora_lab(tmp_path, *train(), preexec_fn=limited)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(errors) == 1 and errors[0].startswith("error: File too large: ") and errors[0].endswith("checkpoints/last.ckpt")
    record = json.loads(next((tmp_path / "runs").rglob("result.json")).read_text())
    assert record["status"] == "failed" and record["reason"] == "OSError: " + errors[0].removeprefix("error: ")
