"""The weights a run's saved adapters stand for: ``W0`` of every analysed matrix and ``W'`` of an
adapter or snapshot, from which every measure reads ``dW = W' - W0`` (``[out, in]``, fp32).

``W0`` comes from ``snapshots/base_weights.safetensors`` (written before the first step,
`lora_lab.analysis.snapshots`) or, for a run without snapshots, from the backbone its adapter records
(`lora_lab.models.backbones.load_recorded_base`). ``W'`` of a LoRA-family adapter is its layer's own
merged weight on ``W0`` (`AdapterLayer.merged_weight`: DoRA's magnitude, AdaLoRA's mask, PiSSA's saved
residual), computed by attaching the method to bare linear maps holding ``W0`` and loading the saved
state the normal way (`lora_lab.adapters.io.load_checkpoint_state`); full fine-tuning saves ``W'``
itself; BitFit changes no matrix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from lora_lab.errors import ConfigError

BASE_NAME = "base_weights.safetensors"  # = lora_lab.analysis.snapshots.BASE_NAME (kept import-light)


@dataclass
class Run:
    """One finished run as the analyses see it."""

    run_dir: Path
    record: dict
    adapter_meta: dict
    snapshots: list[dict] = field(default_factory=list)

    @property
    def method(self) -> str:
        return self.adapter_meta["adapter"]["method"]

    @property
    def modules(self) -> list[str]:
        return list(self.adapter_meta["adapted_modules"])

    @property
    def label(self) -> str:
        """``<method label> r=<r> seed<seed>``: the run's name in tables and figures."""
        from lora_lab.results.names import method_label

        cfg = self.adapter_meta["adapter"]
        name = method_label(cfg["method"], cfg.get("init"), cfg.get("rslora"))
        rank = f" r={cfg['r']}" if "r" in cfg else ""
        return f"{name}{rank} seed{(self.record.get('config') or {}).get('seed', '?')}"

    @property
    def group(self) -> str:
        """The label without the seed: runs averaged together in learning curves."""
        return self.label.rsplit(" seed", 1)[0]


def find_runs(paths) -> list[Path]:
    """Run directories (holding ``result.json``) at or under ``paths``, sorted; a path that does not
    exist is a `ConfigError`."""
    found = []
    for p in map(Path, paths):
        if not p.exists():
            raise ConfigError("RUN", f"{p} does not exist; allowed: run directories or sweep directories holding result.json")
        found += [p] if (p / "result.json").is_file() else sorted(r.parent for r in p.rglob("result.json"))
    return sorted(dict.fromkeys(found))


def load_run(run_dir: Path) -> Run:
    from lora_lab.adapters.io import read_adapter_meta

    from lora_lab.strict_read import read_json_file

    record = read_json_file(run_dir / "result.json", "RUN")
    status = record.get("status") if isinstance(record, dict) else None
    if status != "success" or not (run_dir / "adapter").is_dir():
        raise ConfigError("RUN", f"{run_dir} is not a finished run with a saved adapter (status {status!r})")
    return Run(run_dir, record, read_adapter_meta(run_dir / "adapter", "RUN"), list(record.get("snapshots") or []))


def same_matrices(runs: list[Run]) -> None:
    """Runs compared matrix by matrix must adapt the same modules; else one `ConfigError` line."""
    first = runs[0]
    for run in runs[1:]:
        if run.modules != first.modules:
            only = sorted(set(run.modules) ^ set(first.modules))[:3]
            raise ConfigError("RUN", f"{run.run_dir} and {first.run_dir} adapt different matrices (e.g. {only}); "
                              "allowed: runs of the same backbone and adapter.targets")


def base_weights(run: Run) -> dict[str, torch.Tensor]:
    """``{module: W0}`` (``[out, in]``, fp32) of the run's analysed matrices."""
    path = run.run_dir / "snapshots" / BASE_NAME
    if path.is_file():
        return load_file(str(path))
    from lora_lab.models.backbones import load_recorded_base
    from lora_lab.analysis.snapshots import analysed_weights

    try:
        model = load_recorded_base(run.run_dir / "adapter")
    except (ConfigError, OSError) as err:
        raise ConfigError("RUN", f"{run.run_dir} has no snapshots/{BASE_NAME} and its backbone cannot be rebuilt ({err}); "
                          "allowed: runs trained with analysis.snapshot_steps or on a loadable backbone") from None

    class _Named:  # analysed_weights reads the module names and (absent) layers only
        layers: dict = {}

        def adapted_module_names(self):
            return run.modules

    return analysed_weights(model, _Named())


def _container(base: dict[str, torch.Tensor]) -> nn.Module:
    """A module tree holding one bias-free ``nn.Linear`` per name, weight ``W0``."""
    root = nn.Module()
    for name, w in base.items():
        parent = root
        *path, leaf = name.split(".")
        for part in path:
            if not hasattr(parent, part):
                parent.add_module(part, nn.Module())
            parent = getattr(parent, part)
        linear = nn.Linear(w.shape[1], w.shape[0], bias=False)
        with torch.no_grad():
            linear.weight.copy_(w)
        parent.add_module(leaf, linear)
    return root


@torch.no_grad()
def updated_weights(adapter_dir: Path, base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{module: W'}`` of a saved adapter or snapshot on the weights ``base``."""
    from lora_lab.adapters import METHODS, build_method, parse_config
    from lora_lab.adapters.io import CONFIG_NAME, WEIGHTS_NAME, load_checkpoint_state, upgrade_meta

    meta = upgrade_meta(json.loads((adapter_dir / CONFIG_NAME).read_text()))
    tensors = load_file(str(adapter_dir / WEIGHTS_NAME))
    names = list(meta["adapted_modules"])
    method_name = meta["adapter"]["method"]
    if METHODS[method_name].reference_row:
        if not METHODS[method_name].changes_weight_matrices:  # BitFit: biases only
            return {n: base[n].clone() for n in names}
        conv1d = _conv1d_modules(adapter_dir)
        return {n: (tensors[f"{n}.weight"].T if n in conv1d else tensors[f"{n}.weight"]).float() for n in names}
    container = _container({n: base[n] for n in names})
    method = build_method(parse_config(meta["adapter"]))
    method.attach(container, meta.get("model_type"), [], module_names=names, initialize=False)
    load_checkpoint_state(container, method, tensors)
    return {n: layer.merged_weight(layer.base_weight().float()) for n, layer in method.layers.items()}


def _conv1d_modules(adapter_dir: Path) -> set[str]:
    """Modules whose saved weight is GPT-2 ``Conv1D`` (``[in, out]``), from the run's base-weights record."""
    path = adapter_dir.parent / BASE_NAME if adapter_dir.parent.name == "snapshots" else adapter_dir.parent / "snapshots" / BASE_NAME
    if not path.is_file():
        return set()
    with safe_open(str(path), "pt") as f:
        return set(json.loads((f.metadata() or {}).get("conv1d_modules", "[]")))


def snapshot_dir(run: Run, step: int) -> Path:
    return run.run_dir / "snapshots" / f"step_{step}"


def snapshot_steps(run: Run) -> list[int]:
    return [int(s["step"]) for s in run.snapshots if snapshot_dir(run, int(s["step"])).is_dir()]


def layer_and_kind(module: str) -> tuple[int | None, str]:
    """``bert.encoder.layer.3.attention.self.query`` -> ``(3, "query")``."""
    parts = module.split(".")
    layers = [int(p) for p in parts if p.isdigit()]
    return (layers[-1] if layers else None), parts[-1]
