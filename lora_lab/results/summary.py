"""Print a one-row-per-run metric table (Markdown) from result.json files: the quick look at runs.

``python -m lora_lab.results.summary RUN_DIR_OR_ROOT...`` finds every result.json below the given
paths. The full aggregation (seeds, nuisance axes, LaTeX) is the ``lora-lab report`` command.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lora_lab.results.record import RESULT_NAME, load_record


def rows(paths: list[str]) -> list[dict]:
    out = []
    for root in paths:
        root = Path(root)
        files = [root] if root.name == RESULT_NAME else sorted(root.rglob(RESULT_NAME))
        for f in files:
            r = load_record(f)
            best = r.metrics.get("best_val") or {}
            test = r.metrics.get("test") or {}
            primary = r.primary_metric
            test_key = "test/" + primary.split("/", 1)[1] if primary else None
            adapter = r.config.get("adapter") or {}
            out.append({
                "run": r.run_name,
                "status": r.status,
                "method": adapter.get("method"),
                "r": adapter.get("r"),
                "trainable": r.params.get("trainable_params"),
                "steps": r.optimizer_steps,
                "metric": primary.split("/", 1)[1] if primary else None,
                "best val": best.get(primary),
                "test": test.get(test_key),
                "majority": r.baselines.get("majority_val"),
                "wall s": r.wall_time_s,
            })
    return out


def markdown(table: list[dict]) -> str:
    if not table:
        return "(no result.json found)"
    cols = list(dict.fromkeys(k for row in table for k in row))
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) and abs(v) <= 1.0 else (f"{v:.0f}" if isinstance(v, float) else ("" if v is None else str(v)))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(row.get(c)) for c in cols) + " |" for row in table]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    print(markdown(rows(argv if argv is not None else sys.argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
