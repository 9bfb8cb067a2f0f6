"""Studies (``sweeps/*.yaml``, paper experiments): find them, expand them, launch them.

`studies` locates a study and reads its header, `expand` lists its trials exactly as Hydra's
multirun would, `launch` is ``lora-lab sweep``, `budget` picks ranks for budget-matched comparisons.
"""
