"""Method level of the adapter interface: attach layers to a model and own the training hooks.

An `AdapterMethod` (registered by name with ``@register_method``: ``lora``, ``loraplus``, ``dora``,
``adalora``, ``vera`` ...; ``pissa`` is LoRA with ``init=pissa``) is built from a validated config, replaces each selected module with its layer type
and returns an `AttachReport` saying exactly what was adapted. It owns two hooks that the Lightning
module calls for every method, so no user has to remember them:

- ``regularization_loss()`` -- added to the task loss at every training step (0 for plain LoRA);
- ``on_optimizer_step(step, total_steps)`` -- after each real optimizer step, gradients still present,
  once per accumulation window; ``step`` is the 0-based index of the step just taken.

A third hook shapes the optimizer: ``param_groups(model)`` returns the trainable parameters as groups,
each ``{"params": [...], "lr_multiplier": float (default 1), "weight_decay": float (default: the
optim config's)}``; `lora_lab.models.optim.build_optimizer` turns them into torch groups (one group of
everything by default; LoRA+ gives ``B`` a larger learning rate). ``before_attach(modules)`` sees every
module about to be wrapped (VeRA sizes its shared projections from them), and
``closed_form_params(shapes)`` states the method's trainable adapter parameter count as a formula of
the adapted ``(in, out)`` shapes, which the contract tests check against the real count.

Method-level state (e.g. AdaLoRA's allocator EMAs and masks) travels through ``state_dict`` /
``load_state_dict`` into checkpoints and saved adapters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from lora_lab.adapters.base import AdapterLayer
from lora_lab.adapters.config import AdapterConfig, check_default_init, check_schema, parse_adapter_config
from lora_lab.adapters.targets import resolve_targets

METHODS: dict[str, type["AdapterMethod"]] = {}


def register_method(cls: type["AdapterMethod"]) -> type["AdapterMethod"]:
    """Class decorator: add a method to the registry after checking its schema's contract. The
    inits it accepts come from the init registry (`lora_lab.adapters.registry`), checked once every
    module is imported (`check_methods`)."""
    check_schema(cls.config_cls, cls.name)
    previous = METHODS.get(cls.name)
    if previous is not None and previous.__qualname__ != cls.__qualname__:
        raise ValueError(f"method {cls.name!r} is registered twice ({previous.__module__} and {cls.__module__})")
    METHODS[cls.name] = cls
    return cls


def check_methods() -> None:
    """After discovery: every method's default init is registered for its family."""
    for cls in METHODS.values():
        check_default_init(cls.config_cls)


def allowed_inits(method: str) -> tuple[str, ...]:
    """The inits (names or ``prefix*`` patterns) the registered ``method`` accepts."""
    return METHODS[method].config_cls.allowed_inits()


def config_registry() -> dict[str, type[AdapterConfig]]:
    return {name: cls.config_cls for name, cls in METHODS.items()}


def parse_config(raw: dict) -> AdapterConfig:
    """Validate a raw adapter config (e.g. ``cfg.adapter``) against its method's schema."""
    return parse_adapter_config(raw, config_registry())


def count_parameters(params) -> int:
    seen, total = set(), 0
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


@dataclass
class AttachReport:
    """Exactly what `AdapterMethod.attach` did to a model."""

    method: str
    adapted_modules: list[str]
    head_modules: list[str]
    adapter_params: int
    head_params: int
    trainable_params: int
    total_params: int
    per_module_params: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "adapted_modules": list(self.adapted_modules),
            "head_modules": list(self.head_modules),
            "adapter_params": self.adapter_params,
            "head_params": self.head_params,
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
        }


class AdapterMethod:
    """Base class: subclasses set ``name``, ``config_cls`` and implement `make_layer` and
    `closed_form_params`; the other hooks have neutral defaults."""

    name: ClassVar[str]
    config_cls: ClassVar[type[AdapterConfig]]
    #: how the report's tables name the method (default: ``name``)
    display_name: ClassVar[str] = ""
    #: the method's row position in the report's tables (ascending; the usual baseline first)
    table_order: ClassVar[float] = 100.0
    #: inits that make a run of this method a method of its own in tables, ``{init: row label}``
    #: (LoRA with ``init=pissa`` is PiSSA); other non-default inits are shown as ``(X init)``
    named_inits: ClassVar[dict[str, str]] = {}
    #: a reference row of the papers' tables (full fine-tuning, BitFit): trains the backbone's own
    #: parameters, attaches no adapter layer (`lora_lab.adapters.reference_method`)
    reference_row: ClassVar[bool] = False
    #: example configs: the method's own knobs (no ``method``, ``init`` or ``targets``) for small
    #: layers; the contract table (tests/contract/) runs the first with every allowed init and the
    #: others with the default init, and fails for a method that declares none
    examples: ClassVar[tuple[dict, ...]] = ()
    #: the method promises: adapted model == base model at init (checked by the contract table)
    identity_at_init: ClassVar[bool] = True
    #: training moves weight matrices (False for BitFit, which trains biases only): the weight analyses
    #: (subspace similarity, ΔW vs W, spectra) apply
    changes_weight_matrices: ClassVar[bool] = True
    #: the update is exactly ΔW = s·B·A when the init leaves the base weight alone (LoRA, LoRA+), so the
    #: trained ``lora_A`` spans ΔW's row space: the basis LoRA (Hu et al. 2021, §7.2) compares across ranks
    update_is_scaled_ba: ClassVar[bool] = False

    def __init__(self, config: AdapterConfig):
        self.config = config
        self.layers: dict[str, AdapterLayer] = {}
        self.head_modules: list[str] = []
        self.model_type: str | None = None

    # ----- what subclasses implement -------------------------------------------------------
    def make_layer(self, base_layer: nn.Module, module_name: str) -> AdapterLayer:
        raise NotImplementedError

    def closed_form_params(self, shapes: dict[str, tuple[int, int]]) -> int:
        """Trainable adapter parameters for adapted modules of ``{name: (in_features, out_features)}``,
        from the method's own formula (e.g. LoRA: ``sum r (in + out)``)."""
        raise NotImplementedError

    def before_attach(self, modules: dict[str, nn.Module]) -> None:
        """Called once with every module about to be wrapped (``{name: module}``), before `make_layer`."""

    def param_groups(self, model: nn.Module) -> list[dict]:
        """The trainable parameters of ``model`` as optimizer groups (see the module docstring)."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def regularization_loss(self) -> torch.Tensor | None:
        """Extra loss term; None when the method has none."""
        return None

    def on_optimizer_step(self, step: int, total_steps: int) -> None:
        """Called after each real optimizer step with gradients still present."""

    def check_schedule(self, total_steps: int) -> None:
        """Validate step-dependent knobs once the total number of optimizer steps is known."""

    def selectable(self, completed_steps: int, total_steps: int) -> bool:
        """May an evaluation after ``completed_steps`` optimizer steps be picked as the best
        (model selection on validation)? False while the adapter is not yet the one being studied
        (AdaLoRA above its final budget)."""
        return True

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise KeyError(f"method {self.name!r} has no state, got {sorted(state)}")

    def summary(self) -> dict:
        """Method-specific facts for result.json. Every method records ``adapter_params_final``, the
        adapter parameters of the adapter as trained (heads excluded), which the report's #Params column
        shows; subclasses extend the dict (``{**super().summary(), ...}``)."""
        return {"adapter_params_final": self.final_adapter_params()}

    def final_adapter_params(self) -> int:
        """Adapter parameters of the trained adapter. Default: those attached (the count is fixed in
        training); a method that prunes (e.g. rank reallocation) counts what it keeps."""
        return count_parameters(p for layer in self.layers.values() for _, p in layer.adapter_parameters())

    def adapted_module_names(self) -> list[str]:
        """The matrices this method adapts (the saved adapter's ``adapted_modules``, what analyses read)."""
        return list(self.layers)

    def snapshot_keys(self) -> set[str] | None:
        """Keys of the adapter state an analysis snapshot keeps (None: all of it, the same as ``adapter/``)."""
        return None

    def save_artifacts(self, run_dir) -> list:
        """Write method-specific files (figures, tables) into ``run_dir`` at the end of a run;
        returns the paths written. Default: nothing."""
        return []

    # ----- shared machinery ----------------------------------------------------------------
    def attach(
        self,
        model: nn.Module,
        model_type: str | None = None,
        head_modules: list[str] = (),
        module_names: list[str] | None = None,
        initialize: bool = True,
    ) -> AttachReport:
        """Wrap the selected modules, freeze everything else but the heads, return the report.

        ``module_names`` (exact dotted names, e.g. from a saved adapter) bypasses target matching;
        ``initialize=False`` skips `AdapterLayer.reset_from_base` when a saved state is loaded next.
        """
        if self.layers:
            raise RuntimeError("this method instance is already attached")
        self.model_type = model_type
        self.head_modules = list(head_modules)
        names = module_names or resolve_targets(model, self.config.targets, self.config.exclude, model_type, self.head_modules)
        for p in model.parameters():
            p.requires_grad_(False)
        self.before_attach({name: model.get_submodule(name) for name in names})
        for name in names:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            layer = self.make_layer(getattr(parent, child), name)
            setattr(parent, child, layer)
            if initialize:
                layer.reset_from_base()
            self.layers[name] = layer
        adapter_params = [p for layer in self.layers.values() for _, p in layer.adapter_parameters()]
        for p in adapter_params:
            p.requires_grad_(True)
        head_params = [p for h in self.head_modules for p in model.get_submodule(h).parameters()]
        for p in head_params:
            p.requires_grad_(True)
        return AttachReport(
            method=self.name,
            adapted_modules=list(names),
            head_modules=list(self.head_modules),
            adapter_params=count_parameters(adapter_params),
            head_params=count_parameters(head_params),
            trainable_params=count_parameters(p for p in model.parameters() if p.requires_grad),
            total_params=count_parameters(model.parameters()),
            per_module_params={n: count_parameters(p for _, p in l.adapter_parameters()) for n, l in self.layers.items()},
        )

    def merge(self) -> None:
        for layer in self.layers.values():
            layer.merge()

    def unmerge(self) -> None:
        for layer in self.layers.values():
            layer.unmerge()

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{name}.{k}": t for name, layer in self.layers.items() for k, t in layer.adapter_state().items()}

    def load_adapter_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, layer in self.layers.items():
            prefix = name + "."
            layer.load_adapter_state({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})


def count_fixed_in_training(method: str | None) -> bool:
    """Does the registered method ``method`` train exactly the parameters it attaches (it keeps the
    default `AdapterMethod.final_adapter_params`)? False for an unknown method."""
    cls = METHODS.get(method) if isinstance(method, str) else None
    return cls is not None and cls.final_adapter_params is AdapterMethod.final_adapter_params


def build_method(config: AdapterConfig) -> AdapterMethod:
    return METHODS[config.method](config)
