"""Training steps never wait for the device: the real trial (`lora_lab.run.trial.run_in_dir`: the trainer
`build_trainer` makes, with every callback a run has -- progress, resume checkpoint, RNG and loader
state, the configured ones) is run for every registered method and every task family, and every host
sync that lora_lab code makes inside a training batch (forward, backward, optimizer step, the
method's hook, every callback's batch-end hook) is counted per step.

How syncs are counted. On CUDA, ``torch.cuda.set_sync_debug_mode("error")`` reports device->host
syncs, but it does nothing on CPU, where this suite's tests run. The equivalent on any device is to
count the Tensor methods that read a value on the host -- ``item``, ``__float__``, ``__int__``,
``__bool__``, ``__index__``, ``tolist`` and ``cpu`` (each blocks until the device has computed the
value; on CUDA each is what the sync debug mode flags) -- patched at the ``torch.Tensor`` level by
`count_host_syncs` for the duration of the trial. A read counts when the first frame above it outside
torch's own package is lora_lab code (so ``x.sum().item()`` inside a torch helper called by us is
ours); reads made by Lightning or transformers themselves (e.g. transformers' attention-mask checks)
are not lora_lab's to remove and are not counted. Only reads inside a training batch count (between
Lightning's ``on_train_batch_start`` and the end of the last ``on_train_batch_end`` hook); evaluation
reads its metrics on the host by design.

What is asserted: 0 syncs in every training step for every method and family, except where a value is
printed (the progress line every ``progress.every_n_steps`` steps reads the loss once) and AdaLoRA's
allocation steps (its schedule boundaries: every ``delta_t`` steps before ``T - tfinal``, and the final
pattern at ``T - tfinal``), which read the threshold and the kept count.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

import lora_lab.run.trial
from lora_lab.adapters import METHODS
from lora_lab.adapters.config import knob_names
from lora_lab.config.trial_config import parse
from lora_lab.config.compose import compose
from lora_lab.tasks.registry import FAMILIES, TASK_SCHEMAS

SYNCING = ("item", "__float__", "__int__", "__bool__", "__index__", "tolist", "cpu")
STEPS = 6
PRINT_EVERY = 4  # the progress line at step 4 reads the loss once
LORA_LAB = os.sep + "lora_lab" + os.sep
TORCH = os.path.dirname(torch.__file__) + os.sep

#: a small config of each method (the conf/adapter/<method>.yaml option with a tiny rank, where it has one); AdaLoRA's
#: schedule puts boundaries at steps 2 and 4 (delta_t = 2 before T - tfinal = 5) and 5 (final pattern)
METHOD_OVERRIDES = {
    "adalora": ["adapter.r=4", "adapter.target_r=2", "adapter.tinit=1", "adapter.tfinal=1", "adapter.delta_t=2"],
    "vera": ["adapter.r=4"],
}
ADALORA_BOUNDARIES = {2, 4, 5}


class SyncCounter(Callback):
    """Opens a counting window at each training batch start; added last, so its batch-end hook runs
    after every other callback's and their reads are inside the window."""

    def __init__(self):
        self.per_step: list[int] = []
        self.where: list[list[str]] = []
        self.active = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.per_step.append(0)
        self.where.append([])
        self.active = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.active = False

    def record(self, frame) -> None:
        if not self.active:
            return
        while frame is not None and frame.f_code.co_filename.startswith(TORCH):
            frame = frame.f_back
        if frame is not None and LORA_LAB in frame.f_code.co_filename:
            self.per_step[-1] += 1
            self.where[-1].append(f"{frame.f_code.co_filename.rsplit(LORA_LAB, 1)[1]}:{frame.f_lineno}")


@contextlib.contextmanager
def count_host_syncs(monkeypatch):
    """The counter, attached to the trainer every trial builds, with the host reads patched."""
    counter = SyncCounter()
    for name in SYNCING:
        original = getattr(torch.Tensor, name)

        def patched(self, *args, _original=original, **kwargs):
            counter.record(sys._getframe(1))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, patched)
    build = lora_lab.run.trial.build_trainer

    def build_with_counter(*args, **kwargs):
        trainer = build(*args, **kwargs)
        trainer.callbacks.append(counter)
        return trainer

    monkeypatch.setattr(lora_lab.run.trial, "build_trainer", build_with_counter)
    yield counter


def family_overrides(family: str, root: Path) -> list[str]:
    """A tiny task of ``family`` on a tiny random backbone, data made by code or written here."""
    if family == "classification":
        return ["task=synthetic", "backbone=tiny_bert", f"task.train_size={STEPS * 8}", "task.val_size=8", "task.test_size=8"]
    if family == "text_to_sql":
        return ["task=wikisql_synthetic", "backbone=tiny_llama", f"task.train_size={STEPS * 8}", "task.val_size=8", "task.test_size=8",
                "task.max_new_tokens=4"]
    if family == "generation":  # the schema's own example rows, on a tiny GPT-2
        files = {}
        node = {"kind": "text_generation", "data_files": {}}
        row = TASK_SCHEMAS["text_generation"](**node).example_row()
        for split in ("train", "val", "test"):
            path = root / f"{split}.jsonl"
            path.write_text("".join(json.dumps(row) + "\n" for _ in range(STEPS * 8 if split == "train" else 8)))
            files[split] = path
        return ["task=text_generation", "backbone=tiny_gpt2", *(f"task.data_files.{s}={p}" for s, p in files.items()), "task.max_new_tokens=4"]
    raise AssertionError(f"no tiny task for the family {family!r}: add one here")


def run_trial_counting(tmp_path, monkeypatch, method: str, family: str, logger: str = "none", extra: tuple[str, ...] = ()) -> tuple[SyncCounter, Path]:
    overrides = [*extra,
        f"logger={logger}", f"adapter={method}", *METHOD_OVERRIDES.get(method, ["adapter.r=2"] if "r" in knob_names(METHODS[method].config_cls) else []), *family_overrides(family, tmp_path),
        "task.batch_size=8", "task.eval_batch_size=8", f"trainer.max_steps={STEPS}", "trainer.max_epochs=1",
        "progress.mode=lines", f"progress.every_n_steps={PRINT_EVERY}", f"paths.runs_root={tmp_path / 'runs'}", "save_adapter=false",
    ]
    trial = parse(compose(overrides))
    run_dir = tmp_path / "run"
    with count_host_syncs(monkeypatch) as counter:
        record = lora_lab.run.trial.run_in_dir(trial, run_dir)
    assert record["status"] == "success" and record["optimizer_steps"] == STEPS
    assert len(counter.per_step) == STEPS
    return counter, run_dir


def allowed_steps(method: str, run_dir: Path) -> dict[int, tuple[int, int]]:
    """Steps where reads are allowed, with the (min, max) count: the progress line's loss read; AdaLoRA's
    boundaries read tau and the kept count (a DDP run adds the mask check)."""
    allowed = {PRINT_EVERY - 1: (1, 1)}
    if method == "adalora":
        history = json.loads((run_dir / "adalora_budget_history.json").read_text())["allocations"]
        boundaries = {row["step"] for row in history}
        assert boundaries == ADALORA_BOUNDARIES
        for step in boundaries:
            low, high = allowed.get(step, (0, 0))
            allowed[step] = (low + 1, high + 3)
    return allowed


CELLS = [
    pytest.param(method, family, id=f"{method}-{family}", marks=[] if family == "classification" or method == "lora" else [pytest.mark.slow])
    for method in sorted(METHODS)
    for family in FAMILIES
    if not (method == "bitfit" and family == "text_to_sql")  # its LLaMA backbone has no bias terms: BitFit is refused there
]


@pytest.mark.parametrize("method,family", CELLS)
def test_no_host_sync_in_a_training_step_of_the_real_trial(tmp_path, monkeypatch, method, family):
    counter, run_dir = run_trial_counting(tmp_path, monkeypatch, method, family)
    allowed = allowed_steps(method, run_dir)
    for step, syncs in enumerate(counter.per_step):
        low, high = allowed.get(step, (0, 0))
        assert low <= syncs <= high, (step, syncs, counter.where[step])


@pytest.mark.parametrize("logger", ["csv", "tensorboard"])
def test_trackers_add_no_host_sync_to_a_training_step(tmp_path, monkeypatch, logger):
    """The default CSV logger and a tracker (TensorBoard, written by its own writer) observe the run
    without reading a device value on any other step: Lightning reads logged values at its own logging
    interval (every 2nd step here, so the window sees it); lora_lab's tracker callback reads the loss
    it sends once per logging step and on no other step; the CSV logger alone adds nothing."""
    counter, run_dir = run_trial_counting(tmp_path, monkeypatch, "lora", "classification", logger=logger, extra=("trainer.log_every_n_steps=2",))
    assert any(run_dir.rglob("metrics.csv" if logger == "csv" else "events.out.tfevents.*")), "the logger wrote nothing"
    allowed = allowed_steps("lora", run_dir)
    if logger != "csv":  # a tracker reads the loss it sends, once per logging step (global step 2, 4, 6), never otherwise
        for index in (1, 3, 5):
            low, high = allowed.get(index, (0, 0))
            allowed[index] = (low + 1, high + 1)
    for step, syncs in enumerate(counter.per_step):
        low, high = allowed.get(step, (0, 0))
        assert low <= syncs <= high, (step, syncs, counter.where[step])
