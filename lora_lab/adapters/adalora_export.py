"""Export a saved lora_lab AdaLoRA adapter to PEFT's AdaLoRA format or to plain PEFT LoRA.

Registered in `lora_lab.adapters.export_registry` as the ``adalora`` exporter, so
``lora-lab export RUN_DIR --format peft OUT_DIR`` writes PEFT AdaLoRA for an AdaLoRA run; the plain
LoRA conversion is `export_peft_lora` (command line below). Both read the directory written by
`lora_lab.adapters.io.save_adapter` (no model needed), and the output loads with
``peft.PeftModel.from_pretrained`` onto the same backbone. Heads saved whole by lora_lab become PEFT
``modules_to_save`` (added by `peft_export.convert_to_peft`).

A triplet is exported when its ``rank_mask`` is set *or* its ``lambda`` is non-zero (a triplet revived
after the last masking step still contributes to the output), so the export computes what ours does.

- **PEFT AdaLoRA** (`adalora_peft_fields`): tensors are cut to the kept triplets (``lora_A`` rows,
  ``lora_E`` rows as ``[k, 1]``, ``lora_B`` columns) and ``rank_pattern`` maps ``<module>.lora_E`` to
  the ``r_init`` booleans, which is what PEFT's ``resize_modules_by_rank_pattern`` expects on load;
  PEFT keeps ``ranknum = r_init`` there, so the scale stays ``alpha / (r_init + 1e-5)``. Logits match
  ours to fp32 rounding (the dropped zero triplets are no longer summed over).
- **Plain LoRA** (`adalora_lora_fields`): ``ΔW = s P_k diag(lambda_k) Q_k`` is written as ``B' A'``
  with ``A' = diag(lambda_k) Q_k``, ``B' = s P_k`` (``s = alpha / (r_init + 1e-5)`` in fp32), rank
  ``k`` per module through ``rank_pattern`` and ``alpha_pattern = k`` (LoRA scaling 1). Modules with
  ``k = 0`` are left out (their update is zero). Outputs match to fp32 rounding.

Command line: ``python -m lora_lab.adapters.adalora_export ADAPTER_DIR OUT_DIR --to adalora|lora``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from lora_lab.adapters.export_registry import PEFT_PREFIX as _PREFIX, register_peft_exporter
from lora_lab.adapters.io import read_adapter
from lora_lab.adapters.peft_export import convert_to_peft, write_peft_adapter


def kept_triplets(tensors: dict[str, torch.Tensor], module: str) -> torch.Tensor:
    """Boolean ``[r_init]``: triplets kept by the mask or still carrying a non-zero lambda."""
    return tensors[f"{module}.rank_mask"].bool() | (tensors[f"{module}.lora_E"] != 0)


@register_peft_exporter("adalora")
def adalora_peft_fields(meta: dict, tensors: dict[str, torch.Tensor]) -> tuple[dict, dict[str, torch.Tensor]]:
    """PEFT AdaLoRA config fields and resized tensors of the adapted modules."""
    cfg = meta["adapter"]
    out, rank_pattern = {}, {}
    for module in meta["adapted_modules"]:
        keep = kept_triplets(tensors, module)
        rank_pattern[f"{module}.lora_E"] = keep.tolist()
        out[f"{_PREFIX}{module}.lora_A"] = tensors[f"{module}.lora_A"][keep]
        out[f"{_PREFIX}{module}.lora_E"] = tensors[f"{module}.lora_E"][keep].view(-1, 1)
        out[f"{_PREFIX}{module}.lora_B"] = tensors[f"{module}.lora_B"][:, keep]
    total_steps = (meta.get("summary") or {}).get("total_steps") or cfg["tinit"] + cfg["tfinal"] + 1
    fields = {
        "peft_type": "ADALORA",
        "init_r": cfg["r"],
        "target_r": cfg["target_r"],
        "lora_alpha": cfg["alpha"],
        "lora_dropout": float(cfg.get("dropout", 0.0)),
        "tinit": cfg["tinit"],
        "tfinal": cfg["tfinal"],
        "deltaT": cfg["delta_t"],
        "beta1": cfg["beta1"],
        "beta2": cfg["beta2"],
        "orth_reg_weight": cfg["orth_reg_weight"],
        "total_step": total_steps,
        "rank_pattern": rank_pattern,
    }
    return fields, out


def adalora_lora_fields(meta: dict, tensors: dict[str, torch.Tensor]) -> tuple[dict, dict[str, torch.Tensor]]:
    """Plain PEFT LoRA config fields (per-module ranks) and tensors of the modules with rank > 0."""
    cfg = meta["adapter"]
    alpha = float(cfg["alpha"])
    ranknum = torch.full((1,), float(cfg["r"])) + 1e-5  # the layer's fp32 r_init + 1e-5
    out, ranks = {}, {}
    for module in meta["adapted_modules"]:
        keep = kept_triplets(tensors, module)
        k = int(keep.sum())
        if k == 0:
            continue
        ranks[module] = k
        a, e, b = tensors[f"{module}.lora_A"], tensors[f"{module}.lora_E"], tensors[f"{module}.lora_B"]
        out[f"{_PREFIX}{module}.lora_A.weight"] = a[keep] * e[keep][:, None]
        out[f"{_PREFIX}{module}.lora_B.weight"] = b[:, keep] * alpha / ranknum
    if not ranks:
        raise ValueError("every adapted module has rank 0; there is no LoRA to export")
    first = next(iter(ranks.values()))
    fields = {
        "peft_type": "LORA",
        "target_modules": list(ranks),
        "r": first,
        "lora_alpha": first,
        "rank_pattern": dict(ranks),
        "alpha_pattern": dict(ranks),
        "lora_dropout": float(cfg.get("dropout", 0.0)),
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
    }
    return fields, out


def _read_adalora(adapter_dir) -> tuple[dict, dict[str, torch.Tensor]]:
    meta, tensors = read_adapter(adapter_dir)
    method = meta.get("adapter", {}).get("method")
    if method != "adalora":
        raise ValueError(f"{adapter_dir} holds a {method!r} adapter, not adalora")
    return meta, tensors


def _provenance(meta: dict, adapter_dir, target: str) -> dict:
    summary = meta.get("summary") or {}
    return {
        "source": str(adapter_dir),
        "method": "adalora",
        "exported_as": target,
        "r_init": meta["adapter"]["r"],
        "alpha": meta["adapter"]["alpha"],
        "rank_pattern": summary.get("rank_pattern"),
        "backbone": meta.get("backbone") or {},
    }


def export_peft_adalora(adapter_dir: str | os.PathLike, out_dir: str | os.PathLike, task_type: str | None = None) -> Path:
    """Write PEFT's AdaLoRA format (resized tensors + boolean ``rank_pattern``); returns ``out_dir``."""
    meta, tensors = _read_adalora(adapter_dir)
    config, state = convert_to_peft(meta, tensors, task_type=task_type)
    return write_peft_adapter(out_dir, config, state, _provenance(meta, adapter_dir, "peft adalora"))


def export_peft_lora(adapter_dir: str | os.PathLike, out_dir: str | os.PathLike, task_type: str | None = None) -> Path:
    """Write plain PEFT LoRA with per-module ranks (``rank_pattern``/``alpha_pattern``); returns ``out_dir``."""
    meta, tensors = _read_adalora(adapter_dir)
    config, state = convert_to_peft(meta, tensors, task_type=task_type, exporter=adalora_lora_fields)
    return write_peft_adapter(out_dir, config, state, _provenance(meta, adapter_dir, "peft lora (per-module ranks)"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("adapter_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--to", choices=("adalora", "lora"), default="adalora")
    parser.add_argument("--task-type", default=None, help="PEFT task_type, e.g. SEQ_CLS (default: from the recorded backbone)")
    args = parser.parse_args(argv)
    fn = export_peft_adalora if args.to == "adalora" else export_peft_lora
    print(fn(args.adapter_dir, args.out_dir, task_type=args.task_type))


if __name__ == "__main__":  # pragma: no cover
    main()
