"""Which mechanism requeues a stopped SLURM job: submitit's, with Lightning's switched off.

Both submitit and Lightning's `SLURMEnvironment(auto_requeue=True)` can react to SLURM's timeout
signal by checkpointing and calling ``scontrol requeue``. Running both would save twice, requeue
twice and fight over the same signal, so exactly one is used:

- **submitit's** (chosen). Our sweeps are launched by hydra-submitit-launcher, whose job already
  owns the signal (``#SBATCH --signal=USR2@signal_delay_s``), knows how to resubmit the exact Hydra
  job (the launcher's ``checkpoint()`` returns the same call, so the requeued job lands in the same
  deterministic run dir) and counts timeouts (``max_num_timeout``) so a run that can never finish is
  not requeued forever. It requeues the whole array task, so SLURM accounting keeps one job id.
- Lightning's auto-requeue is **disabled** (`cluster_plugins` passes
  ``SLURMEnvironment(auto_requeue=False)`` whenever Lightning would detect SLURM). It saves an
  ``hpc_ckpt_<n>.ckpt`` from inside the signal handler, i.e. at an arbitrary point of a training
  step (possibly between ``backward`` and ``optimizer.step``), in the run dir next to our
  ``last.ckpt``, and would resume from that file first on SLURM.

Neither mechanism writes our checkpoint: `lora_lab.resume.checkpoint.ResumeCheckpoint` does, at
a safe point after the signal, and only then hands the run to submitit (`signals.hand_over`).
`SLURMEnvironment` itself stays: it maps ``SLURM_PROCID`` / ``SLURM_LOCALID`` / ``SLURM_NTASKS`` to
DDP ranks for multi-GPU jobs (``tasks_per_node = gpus``).
"""

from __future__ import annotations

from lightning.fabric.plugins.environments import SLURMEnvironment


def cluster_plugins() -> list:
    """Trainer plugins for the cluster the process runs in: SLURM without auto-requeue, or none."""
    if SLURMEnvironment.detect():
        return [SLURMEnvironment(auto_requeue=False)]
    return []
