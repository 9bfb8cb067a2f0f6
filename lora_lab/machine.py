"""The hardware a process computes on, as ``result.json`` records it for each attempt and ``lora-lab env``
prints it.

A trial that spans sittings can resume on another machine. Its numbers stay a continuation of the
same optimisation, but they are no longer guaranteed to match bit for bit what one machine would have
computed: two CPU models (or GPU models) may pick different vector kernels and round differently. So
each entry of ``result.json: attempts`` says where its process ran::

    "machine": {"cpu": "Intel(R) Xeon(R) Processor", "cpus": 2, "devices": "cpu"}
    "machine": {"cpu": "AMD EPYC 7763 64-Core Processor", "cpus": 16, "devices": "2 x NVIDIA H100 80GB HBM3"}

``cpu`` is the processor's model name (``/proc/cpuinfo`` on Linux, else what `platform` says), ``cpus``
the cores this process may use, and ``devices`` what the trainer computes on, filled in when training
starts (`training_devices`): ``cpu``, or the number of processes times the GPU model of rank 0.
``devices`` is read from the trainer, never from ``torch.cuda`` before it: asking CUDA for a device name
before a forking DDP launch would initialise CUDA in the parent.

Standard library only (torch is only touched through the trainer that is passed in).
"""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The processor's model name: the first ``model name`` (x86) or ``Model``/``Hardware`` (ARM) line
    of ``/proc/cpuinfo``; elsewhere `platform.processor` or the architecture."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for key, _, value in (line.partition(":") for line in info if ":" in line):
                fields.setdefault(key.strip(), value.strip())  # the first core's line
    except OSError:
        pass
    for key in ("model name", "Model", "Hardware"):
        if fields.get(key):
            return fields[key]
    return platform.processor() or platform.machine() or "unknown"


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask: a SLURM job's allocation, ``taskset``),
    else every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def host_machine() -> dict:
    """``{"cpu": ..., "cpus": ...}`` for this process; `training_devices` adds ``devices`` later."""
    return {"cpu": cpu_model(), "cpus": usable_cpus()}


def training_devices(trainer) -> str:
    """What a Lightning trainer computes on: ``cpu`` (or the accelerator's device type), or for CUDA
    ``N x <GPU model of this rank's device>`` where N counts every process (devices x nodes)."""
    device = trainer.strategy.root_device
    if device.type != "cuda":
        return device.type
    import torch

    processes = int(getattr(trainer, "world_size", 1) or 1)
    return f"{processes} x {torch.cuda.get_device_name(device)}"
