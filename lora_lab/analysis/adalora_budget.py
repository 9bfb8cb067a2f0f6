"""AdaLoRA's budget and per-matrix rank over training (Zhang et al. 2023, section 3.3, Appendix A,
Figures 1 and 4).

The scheduled budget (total kept rank) is the cubic schedule of Appendix A eq. 14 as implemented
(`lora_lab.adapters.rank_allocator.budget_schedule`): ``b(t) = b0`` up to ``t_i``, then
``floor(bT + (b0 - bT) (1 - (t - t_i) / (T - t_f - t_i))^3)``, then ``bT``. What the allocator kept at
each allocation (total and per matrix, ``rank_mask.sum()``) is recorded by the allocator at those
steps only (`RankAllocator.record_allocation`) and written to ``adalora_budget_history.json``; this
module reads it back into rows.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_history(run_dir: Path) -> dict | None:
    path = Path(run_dir) / "adalora_budget_history.json"
    return json.loads(path.read_text()) if path.is_file() else None


def scheduled_budget(history: dict) -> list[tuple[int, int]]:
    """``[(t, b(t))]`` for every optimizer step of the run (empty if the history lacks the schedule)."""
    from lora_lab.adapters.rank_allocator import budget_schedule

    total = history.get("total_steps")
    if not total or history.get("tinit") is None:
        return []
    args = (history["budget_init"], history["budget_target"], history["tinit"], history["tfinal"], total, history["delta_t"])
    return [(t, budget_schedule(t, *args)[0]) for t in range(total)]


def allocation_rows(history: dict) -> list[dict]:
    """One row per (allocation, matrix): step, scheduled budget, kept total, module, kept rank."""
    rows = []
    modules = history.get("modules") or []
    for alloc in history.get("allocations", []):
        ranks = alloc.get("ranks") or [None] * len(modules)
        for module, rank in zip(modules, ranks):
            rows.append({"step": alloc["step"], "budget": alloc["budget"], "kept": alloc["kept"], "module": module, "rank": rank})
    return rows
