"""Fabricated result.json files with the schema `lora_lab.run.trial` writes (for report tests)."""

from __future__ import annotations

import json
from pathlib import Path

from lora_lab.config.naming import adapter_tag


def make_record(task="synthetic", method="lora", seed=0, lr=5e-4, val=0.8, test=None, r=8, init="kaiming", status="success",
                majority=0.5, curve=None, study="fab", adapter_params=None, extra_cfg=None, adapter_extra=None, written_at="2026-01-01T00:00:00"):
    """One result record; ``val`` is the best validation primary metric, ``curve`` the validation values."""
    metric = "mcc" if task == "glue_cola" else "accuracy"
    primary = f"val/{metric}"
    has_test = task == "synthetic"
    adapter = {"method": method, "r": r, "alpha": 16, "dropout": 0.0, "targets": "qv", "exclude": [], "init": init, "rslora": False, **(adapter_extra or {})}
    config = {
        "task": {"name": task, "kind": "synthetic_sentiment" if has_test else "glue", "batch_size": 32},
        "backbone": {"name": "tiny-bert-random", "short_name": "tiny_bert"},
        "adapter": adapter,
        "optim": {"name": "adamw", "lr": lr, "betas": [0.9, 0.999]},
        "trainer": {"max_steps": 100},
        "seed": seed, "study": study, "lr_scale": 1, "method_lr": {"default": 5e-4},
        **(extra_cfg or {}),
    }
    run_name = f"{task}/tiny_bert/{adapter_tag(adapter)}/lr{lr}-seed{seed}"
    config["run_name"] = run_name
    record = {"schema_version": 1, "written_at": written_at, "run_name": run_name, "study": study, "config": config, "overrides": [],
              "status": status, "git": {"sha": "abc", "dirty": False}}
    if status != "success":
        record["reason"] = "RuntimeError: boom" if status == "failed" else "interrupted"
        return record
    points = curve if curve is not None else [val - 0.05, val]
    record.update(
        primary_metric=primary,
        params={"adapter_params": adapter_params if adapter_params is not None else 1024 * r, "trainable_params": (adapter_params or 1024 * r) + 66},
        metrics={"best_val": {"step": 10, primary: val}, "final": {"step": 20, primary: points[-1]},
                 "test": {f"test/{metric}": test} if has_test and test is not None else {}},
        baselines={"majority_val": majority if metric == "accuracy" else None},
        curve=[{"step": 10 * (i + 1), primary: v} for i, v in enumerate(points)],
        method_summary={}, optimizer_steps=20, wall_time_s=1.0,
    )
    return record


def write_record(root: Path, record: dict) -> Path:
    run_dir = Path(root) / record["study"] / record["run_name"]
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "result.json"
    path.write_text(json.dumps(record))
    return path
