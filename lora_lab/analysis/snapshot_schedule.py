"""When a trial keeps adapter snapshots: the ``analysis`` config node, checked before anything runs.

``analysis.snapshot_steps`` (a list of optimizer-step counts, 0 = before the first step) and
``analysis.snapshot_every`` (N: steps 0, N, 2N, ...) give the steps at which
``<run>/snapshots/step_<k>/`` keeps the adapter (`lora_lab.analysis.snapshots`); both empty/null
(the default): no snapshots. Step ``k`` means "after k optimizer steps". Pure Python: the gate imports it.
"""

from __future__ import annotations

from lora_lab.errors import ConfigError, did_you_mean

ANALYSIS_KEYS = ("snapshot_steps", "snapshot_every")


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def analysis_options(raw) -> dict:
    """``{"snapshot_steps": sorted unique ints, "snapshot_every": int | None}``; a `ConfigError` line
    naming the key, the bad value and what is allowed."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError("analysis", f"must be a mapping with keys {', '.join(ANALYSIS_KEYS)}, got {raw!r}")
    for key in raw:
        if key not in ANALYSIS_KEYS:
            raise ConfigError(f"analysis.{key}", f"unknown key{did_you_mean(str(key), ANALYSIS_KEYS)}; allowed: {', '.join(ANALYSIS_KEYS)}")
    steps = raw.get("snapshot_steps") or []
    if isinstance(steps, int) and not isinstance(steps, bool):
        steps = [steps]
    if not isinstance(steps, (list, tuple)) or not all(_is_count(s) for s in steps):
        raise ConfigError("analysis.snapshot_steps", f"{raw.get('snapshot_steps')!r}; allowed: a list of optimizer steps, integers >= 0 (e.g. [0,50,100])")
    every = raw.get("snapshot_every")
    if every is not None and not (_is_count(every) and every > 0):
        raise ConfigError("analysis.snapshot_every", f"{every!r}; allowed: null or a positive integer number of optimizer steps")
    return {"snapshot_steps": sorted(set(int(s) for s in steps)), "snapshot_every": every}


def snapshots_on(options: dict) -> bool:
    return bool(options.get("snapshot_steps")) or options.get("snapshot_every") is not None


def snapshot_due(step: int, options: dict) -> bool:
    """Is optimizer step count ``step`` one of the schedule's?"""
    every = options.get("snapshot_every")
    return step in options.get("snapshot_steps", ()) or (every is not None and step % every == 0)
