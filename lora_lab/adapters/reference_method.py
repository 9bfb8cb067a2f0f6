"""Reference rows of the papers' tables: methods that train a subset of the backbone's *own* parameters
(no adapter layer is attached), behind the same `AdapterMethod` interface as LoRA.

Full fine-tuning (`lora_lab.adapters.full`) trains every backbone parameter, BitFit
(`lora_lab.adapters.bitfit`) only the bias terms; both train the heads as every method does. The
trained tensors are the method's "adapter state" (`adapter_state_dict`: ``{parameter name: tensor}``),
so checkpoints, resume, best-state selection and ``adapter/`` work unchanged; for full fine-tuning
that state is the whole backbone. ``targets`` does not choose what trains: it names the matrices that
snapshots keep and analyses read (``adapted_module_names``). Merging and per-matrix parameter formulas
have no meaning for these methods and are refused with one line (docs/algorithms/reference.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from lora_lab.adapters.config import AdapterConfig
from lora_lab.adapters.method import AdapterMethod, AttachReport, count_parameters
from lora_lab.adapters.registry import register_init
from lora_lab.adapters.targets import resolve_targets
from lora_lab.errors import ConfigError


#: the only init of the reference methods: training starts from the backbone's weights
PRETRAINED = "pretrained"


@register_init(PRETRAINED, families=("full", "bitfit"), display="pretrained")
def pretrained_init(layer: nn.Module, name: str) -> None:
    """Nothing to initialise: no adapter layer is attached (registered so the config check knows the init)."""


@dataclass
class ReferenceConfig(AdapterConfig):
    """``targets``: the matrices analysed and snapshotted (not what trains); ``dropout`` must be 0
    (there is no adapter branch); ``init`` is ``pretrained`` (training starts from the backbone)."""

    init: str = PRETRAINED

    def validate(self) -> None:
        if self.dropout != 0.0 and self.dropout != 0:
            raise ConfigError("adapter.dropout", f"{self.dropout!r}: method {self.method!r} has no adapter branch to drop out; allowed: 0.0")
        super().validate()


class ReferenceMethod(AdapterMethod):
    """Trains the backbone parameters `trains` selects (plus the heads); attaches no layer."""

    #: what an analysis or a merge sees: these are reference rows, not adapters
    reference_row: ClassVar[bool] = True

    def __init__(self, config: ReferenceConfig):
        super().__init__(config)
        self.trained: dict[str, nn.Parameter] = {}  # backbone parameters this method trains, by name
        self.analysed_modules: list[str] = []

    def trains(self, parameter_name: str) -> bool:
        """Does this method train the backbone parameter ``parameter_name`` (heads excluded)?"""
        raise NotImplementedError

    def attach(self, model: nn.Module, model_type: str | None = None, head_modules: list[str] = (), module_names: list[str] | None = None,
               initialize: bool = True) -> AttachReport:
        if self.trained or self.analysed_modules:
            raise RuntimeError("this method instance is already attached")
        self.model_type = model_type
        self.head_modules = list(head_modules)
        self.analysed_modules = list(module_names or resolve_targets(model, self.config.targets, self.config.exclude, model_type, self.head_modules))
        head_names = {f"{h}.{n}" for h in self.head_modules for n, _ in model.get_submodule(h).named_parameters()}
        for name, p in model.named_parameters():
            train = name in head_names or self.trains(name)
            p.requires_grad_(train)
            if train and name not in head_names:
                self.trained[name] = p
        if not self.trained:
            raise ConfigError("adapter.method", f"{self.name!r} trains no parameter of this {model_type or 'model'} (it has none that the method selects, "
                              "e.g. LLaMA and T5 linear layers have no bias terms); allowed: a backbone with them, or another method")
        head_params = [p for h in self.head_modules for p in model.get_submodule(h).parameters()]
        return AttachReport(
            method=self.name,
            adapted_modules=list(self.analysed_modules),
            head_modules=list(self.head_modules),
            adapter_params=count_parameters(self.trained.values()),
            head_params=count_parameters(head_params),
            trainable_params=count_parameters(p for p in model.parameters() if p.requires_grad),
            total_params=count_parameters(model.parameters()),
        )

    def adapted_module_names(self) -> list[str]:
        return list(self.analysed_modules)

    def final_adapter_params(self) -> int:
        return count_parameters(self.trained.values())

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.trained)

    @torch.no_grad()
    def load_adapter_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = sorted(set(self.trained) - set(state))
        if missing:
            raise KeyError(f"{self.name} state lacks trained parameters: {missing[:5]}")
        for name, p in self.trained.items():
            p.copy_(state[name].to(device=p.device, dtype=p.dtype))

    def make_layer(self, base_layer: nn.Module, module_name: str):
        raise ConfigError("adapter.method", f"{self.name!r} trains the backbone's own weights: there is no adapter layer to merge or compose; "
                          "allowed: a LoRA-family adapter (lora, loraplus, dora, adalora, vera)")

    def merge(self) -> None:
        self.make_layer(None, "")

    unmerge = merge

    def closed_form_params(self, shapes: dict[str, tuple[int, int]]) -> int:
        raise ConfigError("adapter.method", f"{self.name!r} has no per-matrix parameter formula (it trains the backbone's own parameters); "
                          "its exact count is params.adapter_params in result.json")
