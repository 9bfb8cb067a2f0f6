"""Export a saved lora_lab AdaLoRA adapter to PEFT's AdaLoRA format or to plain PEFT LoRA.

Both read the directory written by `lora_lab.adapters.io.save_adapter` (no model needed) and write
``adapter_config.json`` + ``adapter_model.safetensors`` that ``peft.PeftModel.from_pretrained``
loads onto the same backbone. A triplet is exported when its ``rank_mask`` is set or its
``lambda`` is non-zero (a triplet revived after the last masking step still contributes to the
output), so the exported adapter computes exactly what ours does.

- **PEFT AdaLoRA** (``export_peft_adalora``): tensors are cut to the kept triplets (``lora_A``
  rows, ``lora_E`` rows as ``[k, 1]``, ``lora_B`` columns) and ``rank_pattern`` maps
  ``<module>.lora_E`` to the ``r_init`` booleans, which is what PEFT's
  ``resize_modules_by_rank_pattern`` expects on load; PEFT keeps ``ranknum = r_init`` there, so
  the scale stays ``alpha / (r_init + 1e-5)`` and the logits are bit-identical.
- **Plain LoRA** (``export_peft_lora``): ``ΔW = s P_k diag(lambda_k) Q_k`` is written as
  ``B' A'`` with ``A' = diag(lambda_k) Q_k``, ``B' = s P_k``, rank ``k`` per module through
  ``rank_pattern`` and ``alpha_pattern = k`` (LoRA scaling 1). Modules with ``k = 0`` are left out
  (their update is zero). Outputs match to fp32 rounding (the products are grouped differently).

Heads saved whole by lora_lab become PEFT ``modules_to_save``.
Command line: ``python -m lora_lab.adapters.adalora_export ADAPTER_DIR OUT_DIR --to adalora|lora``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lora_lab.adapters.io import CONFIG_NAME, WEIGHTS_NAME, read_adapter_meta

_PREFIX = "base_model.model."


def _read(adapter_dir) -> tuple[dict, dict[str, torch.Tensor]]:
    meta = read_adapter_meta(adapter_dir)
    if meta.get("adapter", {}).get("method") != "adalora":
        raise ValueError(f"{adapter_dir} holds a {meta.get('adapter', {}).get('method')!r} adapter, not adalora")
    return meta, load_file(str(Path(adapter_dir) / WEIGHTS_NAME))


def kept_triplets(tensors: dict[str, torch.Tensor], module: str) -> torch.Tensor:
    """Boolean ``[r_init]``: triplets that are kept by the mask or still carry a non-zero lambda."""
    return tensors[f"{module}.rank_mask"].bool() | (tensors[f"{module}.lora_E"] != 0)


def _heads(meta: dict, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    heads = meta.get("head_modules") or []
    return {_PREFIX + k: v for k, v in tensors.items() if any(k.startswith(h + ".") for h in heads)}


def _base_config(meta: dict, task_type: str | None) -> dict:
    adapter = meta["adapter"]
    return {
        "task_type": task_type,
        "base_model_name_or_path": (meta.get("backbone") or {}).get("name"),
        "revision": (meta.get("backbone") or {}).get("revision"),
        "lora_dropout": adapter.get("dropout", 0.0),
        "modules_to_save": list(meta.get("head_modules") or []) or None,
        "fan_in_fan_out": meta.get("model_type") == "gpt2",
        "bias": "none",
        "inference_mode": True,
    }


def _write(out_dir, config: dict, tensors: dict[str, torch.Tensor]) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / WEIGHTS_NAME))
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2))
    return out


def export_peft_adalora(adapter_dir: str | os.PathLike, out_dir: str | os.PathLike, task_type: str | None = None) -> Path:
    """Write PEFT's AdaLoRA format (resized tensors + boolean ``rank_pattern``); returns ``out_dir``."""
    meta, tensors = _read(adapter_dir)
    adapter = meta["adapter"]
    out, rank_pattern = _heads(meta, tensors), {}
    for module in meta["adapted_modules"]:
        keep = kept_triplets(tensors, module)
        rank_pattern[f"{module}.lora_E"] = keep.tolist()
        out[f"{_PREFIX}{module}.lora_A"] = tensors[f"{module}.lora_A"][keep]
        out[f"{_PREFIX}{module}.lora_E"] = tensors[f"{module}.lora_E"][keep].view(-1, 1)
        out[f"{_PREFIX}{module}.lora_B"] = tensors[f"{module}.lora_B"][:, keep]
    total_steps = (meta.get("summary") or {}).get("total_steps") or adapter["tinit"] + adapter["tfinal"] + 1
    config = _base_config(meta, task_type) | {
        "peft_type": "ADALORA",
        "target_modules": list(meta["adapted_modules"]),
        "init_r": adapter["r"],
        "target_r": adapter["target_r"],
        "lora_alpha": adapter["alpha"],
        "tinit": adapter["tinit"],
        "tfinal": adapter["tfinal"],
        "deltaT": adapter["delta_t"],
        "beta1": adapter["beta1"],
        "beta2": adapter["beta2"],
        "orth_reg_weight": adapter["orth_reg_weight"],
        "total_step": total_steps,
        "rank_pattern": rank_pattern,
    }
    return _write(out_dir, config, out)


def export_peft_lora(adapter_dir: str | os.PathLike, out_dir: str | os.PathLike, task_type: str | None = None) -> Path:
    """Write plain PEFT LoRA with per-module ranks (``rank_pattern``/``alpha_pattern``); returns ``out_dir``."""
    meta, tensors = _read(adapter_dir)
    alpha, r_init = float(meta["adapter"]["alpha"]), int(meta["adapter"]["r"])
    ranknum = torch.full((1,), float(r_init)) + 1e-5  # the layer's fp32 r_init + 1e-5
    out, ranks = _heads(meta, tensors), {}
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
        raise ValueError(f"{adapter_dir}: every adapted module has rank 0; there is no LoRA to export")
    first = next(iter(ranks.values()))
    config = _base_config(meta, task_type) | {
        "peft_type": "LORA",
        "target_modules": list(ranks),
        "r": first,
        "lora_alpha": first,
        "rank_pattern": dict(ranks),
        "alpha_pattern": dict(ranks),
    }
    return _write(out_dir, config, out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("adapter_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--to", choices=("adalora", "lora"), default="adalora")
    parser.add_argument("--task-type", default=None, help="PEFT task_type, e.g. SEQ_CLS")
    args = parser.parse_args(argv)
    fn = export_peft_adalora if args.to == "adalora" else export_peft_lora
    print(fn(args.adapter_dir, args.out_dir, task_type=args.task_type))


if __name__ == "__main__":  # pragma: no cover
    main()
