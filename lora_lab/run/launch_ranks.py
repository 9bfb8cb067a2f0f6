"""How the processes of one multi-process (DDP) trial are started.

Lightning starts ranks >= 1 of a local DDP run by re-running this process's command line: under
Hydra as ``python -m <__main__.__spec__.name> <sys.argv[1:]> hydra.run.dir=<run dir>`` (or
``python <sys.argv[0]> ...`` when ``__main__`` has no module spec, as for a console script).
`as_train_module` makes ``lora-lab train ...`` (console script or ``python -m lora_lab.cli``) look
like ``python -m lora_lab.train ...`` to it, so every rank runs the same trial in the same run dir.

A ``--multirun`` sweep cannot run local DDP trials one after another in one process: the children
would re-run the whole sweep, and after the first trial Lightning's launcher leaves ``LOCAL_RANK``
set in the parent so the next trial would wait for ranks nobody starts. `check_local_ddp_sweep`
refuses that combination before anything is written. DDP trials in a sweep run through a launcher
that starts every rank itself (``hydra/launcher=slurm_ddp``: SLURM starts one task per GPU).

Which process is rank 0 before the trainer exists: `lora_lab.process_rank`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from typing import Iterator

import torch
from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

from lora_lab.errors import ConfigError

TRAIN_MODULE = "lora_lab.train"


@contextlib.contextmanager
def as_train_module(argv: list[str]) -> Iterator[None]:
    """Within the block, ``sys.argv`` and ``__main__.__spec__`` read as ``python -m lora_lab.train ARGV``
    (what `runpy` sets for ``-m``), so a re-executed command line names a real module."""
    import __main__

    spec = importlib.util.find_spec(TRAIN_MODULE)
    saved_argv, saved_spec = sys.argv, getattr(__main__, "__spec__", None)
    sys.argv = [spec.origin, *argv]
    __main__.__spec__ = spec
    try:
        yield
    finally:
        sys.argv = saved_argv
        __main__.__spec__ = saved_spec


def _world_size(trainer_cfg: dict) -> int:
    devices, nodes = trainer_cfg.get("devices", 1), trainer_cfg.get("num_nodes", 1) or 1
    on_gpu = trainer_cfg.get("accelerator") in ("gpu", "cuda", "auto")
    if isinstance(devices, (list, tuple)):
        count = len(devices)
    elif isinstance(devices, int) or (isinstance(devices, str) and devices.strip().lstrip("-").isdigit()):
        count = int(devices)
        if count == -1:  # every device of the accelerator
            count = _gpu_count() if on_gpu else (os.cpu_count() or 1)
    else:  # "auto": every GPU of the machine, one CPU process
        count = _gpu_count() if on_gpu else 1
    return max(count, 1) * int(nodes)


def _gpu_count() -> int:
    return torch.cuda.device_count()


def processes_started_externally() -> bool:
    """Does a cluster launcher (SLURM tasks, torchrun) start every rank, rather than Lightning?"""
    return SLURMEnvironment.detect() or TorchElasticEnvironment.detect()


def check_local_ddp_sweep(trainer_cfg: dict, multirun: bool) -> None:
    """Refuse a multirun whose trials would each have Lightning spawn DDP ranks on this machine."""
    if not multirun or _world_size(trainer_cfg) <= 1 or processes_started_externally():
        return
    raise ConfigError(
        "trainer.devices",
        f"{trainer_cfg.get('devices')!r} processes per trial in a local --multirun sweep: Lightning's DDP launcher would re-run the "
        "sweep in every rank; run each trial as its own `lora-lab train ...`, or sweep with a launcher that starts the ranks "
        "(hydra/launcher=slurm_ddp), or use trainer.devices=1",
    )
