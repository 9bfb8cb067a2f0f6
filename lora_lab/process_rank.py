"""Which process of a job this is, before any trainer exists (stdlib only: the run lock imports it).

Rank 0 is decided on the *global* rank: ``RANK`` / ``SLURM_PROCID`` when set, otherwise
``NODE_RANK`` (Lightning's own multi-node launch sets only ``NODE_RANK`` and ``LOCAL_RANK``) and
``LOCAL_RANK`` must both be 0; counting every node's local rank 0 as rank 0 would let each node
write the run's ``result.json``.
"""

from __future__ import annotations

import os


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else None


def rank_tag() -> str:
    """A name unique to this process among the job's processes: ``<global rank>`` when the launcher
    says it, else ``node<n>-<local rank>`` (Lightning's multi-node launch sets only these)."""
    for key in ("RANK", "SLURM_PROCID"):
        if _env_int(key) is not None:
            return str(_env_int(key))
    node, local = _env_int("NODE_RANK") or _env_int("GROUP_RANK") or 0, _env_int("LOCAL_RANK") or 0
    return str(local) if node == 0 else f"node{node}-{local}"


def is_global_zero() -> bool:
    """Is this process global rank 0 of its job (before the trainer exists)?"""
    return rank_tag() == "0"
