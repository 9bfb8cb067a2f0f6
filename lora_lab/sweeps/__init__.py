"""Studies (``sweeps/*.yaml``, paper experiments): find them, plan them, launch them.

`studies` locates a study and reads its header, `expand` plans it (a grid's trials exactly as Hydra's
multirun would; an Optuna study's search space), `launch` is ``lora-lab sweep``, `budget` picks ranks
for budget-matched comparisons. Optuna: `search_space` (sweep syntax -> distributions),
`optuna_study` (resumable, shareable claim / launch / tell loop), `optuna_plan` (dry run, summary);
`hydra_private` is the one call into Hydra's private API.
"""
