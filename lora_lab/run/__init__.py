"""The trial-running layer: everything between a parsed config and a finished ``result.json``.

- `gate` -- the read-only check before a trial (skip / resume / fresh; a bad command line as one line);
- `trial` -- one trial in its run directory: lock, build, fit, evaluate, write the record;
- `progress`, `console`, `logs` -- what a run prints (live progress, end-of-run summary, quiet logging);
- `launch_ranks` -- one process per device for multi-GPU trials; `env_info` -- ``lora-lab env``.

It imports the layers under it (config, tracking, results, tasks, resume, models, adapters, base;
docs/architecture.md) and is imported only by the entry points (`lora_lab.train`, the sweeps, the CLI).
"""
