"""Research instruments: the analyses behind the LoRA, DoRA and AdaLoRA papers, on any run.

One file per measure (`subspace`, `dw_vs_w`, `spectrum`, `decomposition`, `adalora_budget`,
`learning_curves`), the adapter snapshots they read (`snapshot_schedule`, `snapshots`), the update
matrices recovered from saved adapters (`updates`), and the ``lora-lab analyze`` command (`command`).
Definitions, equations and paper sections: each module's docstring and docs/analysis.md.
This package imports nothing at import time.
"""
