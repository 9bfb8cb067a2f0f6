"""Runs that survive preemption: everything a requeued job needs to continue exactly where it stopped.

A trial lives in a deterministic run directory (`lora_lab.config.naming`), so a requeued SLURM job lands in
the same place and resumes from ``checkpoints/last.ckpt``. This package makes that resume exact
(the final result of an interrupted run equals an uninterrupted one, bit for bit on CPU):

- `checkpoint.ResumeCheckpoint` owns ``last.ckpt``: written at every validation, every
  ``resume.every_n_minutes`` and, on SLURM's timeout/preemption signals, at the next safe point
  (after an optimizer step, never between a batch and its validation), then the run stops;
- `signals` turns those signals into a flag (work happens at the safe point, not in the handler)
  and hands a stopped run to submitit, which requeues it (`slurm` explains why submitit's mechanism
  and not Lightning's);
- `sampler` makes the training data order a function of ``(seed, epoch)`` and lets a resumed epoch
  skip the batches already trained on (`LoaderStateRestore` hands the position back);
- `rng` checkpoints the torch / CUDA / numpy / Python RNG states (dropout masks continue);
- `checkpoint_io.AtomicCheckpointIO` writes checkpoints with temp + fsync + rename;
- `lock.RunLock` keeps two jobs of the same trial (a sweep launched twice) out of one run dir.

Optimizer, LR scheduler and loop progress are Lightning's own checkpoint content; adapter and
method state (AdaLoRA's allocator) come from `lora_lab.models.module.AdapterModule`.
"""
