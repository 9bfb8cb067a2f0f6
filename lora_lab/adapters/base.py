"""Layer level of the adapter interface: one `AdapterLayer` wraps exactly one frozen linear map.

A wrapped layer computes ``h = W0 x + b0`` through the original module (held by reference as
``base_layer``) and lets the subclass add its adapter on top:

    forward(x) = adapter_forward(x, base_layer(x))          while unmerged and enabled
               = base_layer(x)                              while merged or disabled

Merging is explicit and computed in fp32 (`merge`, `unmerge`); it is never tied to ``train()``/``eval()``
(the microsoft ``loralib`` pitfall, docs/algorithms/lora.md). On a 16-bit base (bf16/fp16) the merged
weight ``W0 + dW`` is rounded once to the base dtype (bf16 keeps 8 significant bits: the merged model
differs from the unmerged one by that rounding), and ``unmerge`` could not recover ``W0`` from it by
subtraction, so `merge` keeps the original 16-bit weight aside and `unmerge` restores it bit for bit
(one extra copy of each merged weight while merged). Weights are handled in the PEFT orientation
``[out, in]``; HF GPT-2 ``Conv1D`` stores ``[in, out]`` and is transposed on the way in and out
(PEFT's ``fan_in_fan_out``).

Life cycle:
1. ``__init__`` allocates shapes only (no weight-dependent work);
2. ``reset_from_base()`` does the initialisation that needs the pretrained weight (DoRA magnitude,
   PiSSA SVD). Layers that write into the base weight set ``mutates_base = True``;
3. trainable parameters are declared by name in ``adapter_parameter_names``; extra saved state
   (buffers) in ``adapter_buffer_names``. Nothing keys off parameter-name prefixes.
"""

from __future__ import annotations

import contextlib
from typing import ClassVar, Iterator

import torch
from torch import nn

from lora_lab.adapters.quant import dequantized_weight, is_quantized, load_quantized_state_, merge_refusal, quantized_state, requantize_


def conv1d_class():
    """HF GPT-2 ``Conv1D`` (``y = x @ W + b`` with ``W: [in, out]``), or None without transformers."""
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers is a hard dependency
        return None
    return Conv1D


#: adapter-state keys of a quantised residual base's stored form (`lora_lab.adapters.quant.quantized_state`),
#: saved beside its dequantised ``base_layer.weight`` and restored bit for bit; adapters and resume files
#: written before it was kept lack them, and their residual is re-quantised instead
QUANTIZED_BASE_PREFIX = "base_layer.weight.quantized."


def is_adaptable(module: nn.Module) -> bool:
    """True for the module types an adapter can wrap: ``nn.Linear`` and GPT-2 ``Conv1D``."""
    conv1d = conv1d_class()
    return isinstance(module, nn.Linear) or (conv1d is not None and isinstance(module, conv1d))


def in_out_features(module: nn.Module) -> tuple[int, int]:
    """``(in_features, out_features)`` of an adaptable module. ``Conv1D`` stores ``[in, out]``; an
    ``nn.Linear`` is read from its attributes (a quantised one stores packed codes, not ``[out, in]``)."""
    if isinstance(module, nn.Linear):
        return int(module.in_features), int(module.out_features)
    w = module.weight
    return int(w.shape[0]), int(w.shape[1])


class AdapterLayer(nn.Module):
    """Base class of every adapter layer; see the module docstring for the contract."""

    adapter_parameter_names: ClassVar[tuple[str, ...]] = ()
    adapter_buffer_names: ClassVar[tuple[str, ...]] = ()
    frozen_buffer_names: tuple[str, ...] = ()  # of those, the ones that keep their initial value
    mutates_base: ClassVar[bool] = False

    def __init__(self, base_layer: nn.Module):
        super().__init__()
        if not is_adaptable(base_layer):
            raise TypeError(f"cannot adapt {type(base_layer).__name__}; only nn.Linear and Conv1D")
        self.base_layer = base_layer
        self.fan_in_fan_out = not isinstance(base_layer, nn.Linear)
        self.in_features, self.out_features = in_out_features(base_layer)
        self.merged = False
        self.disabled = False
        self._unmerged_base: torch.Tensor | None = None  # a 16-bit base's weight while merged

    # ----- what subclasses implement -------------------------------------------------------
    def delta_weight(self) -> torch.Tensor:
        """The additive update ``ΔW`` in ``[out, in]`` orientation (fp32)."""
        raise NotImplementedError

    def adapter_forward(self, x: torch.Tensor, base_out: torch.Tensor) -> torch.Tensor:
        """Output of the adapted layer given the input and the frozen layer's output ``W0 x + b0``."""
        raise NotImplementedError

    def reset_from_base(self) -> None:
        """Weight-dependent initialisation, run once after the pretrained weights are loaded."""

    def on_base_quantized(self) -> None:
        """Re-derive init state that depends on the base weight's values once the base was quantised
        (`lora_lab.adapters.quant_model.quantize_base`); default: nothing depends on them."""

    def merged_weight(self, base_weight: torch.Tensor) -> torch.Tensor:
        """``W0 -> W_merged`` in fp32, ``[out, in]``. Additive by default."""
        return base_weight + self.delta_weight()

    def unmerged_weight(self, merged_weight: torch.Tensor) -> torch.Tensor:
        """Inverse of `merged_weight`."""
        return merged_weight - self.delta_weight()

    # ----- shared machinery ----------------------------------------------------------------
    @property
    def weight(self) -> torch.Tensor:
        """The frozen base weight (HF code such as T5 reads ``layer.weight.dtype``)."""
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    def base_weight(self) -> torch.Tensor:
        """The frozen weight as ``[out, in]`` (a transposed view for Conv1D; ``deq(Q(W))`` in fp32 for a
        quantised base)."""
        if is_quantized(self.base_layer):
            return dequantized_weight(self.base_layer)
        w = self.base_layer.weight
        return w.T if self.fan_in_fan_out else w

    @torch.no_grad()
    def set_base_weight(self, weight_out_in: torch.Tensor) -> None:
        """Write an ``[out, in]`` matrix into the base layer, in its own layout and dtype."""
        target = self.base_layer.weight
        value = weight_out_in.T if self.fan_in_fan_out else weight_out_in
        target.copy_(value.to(target.dtype))

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        base_out = self.base_layer(x, *args, **kwargs)
        if self.merged or self.disabled:
            return base_out
        return self.adapter_forward(x, base_out)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the adapter into the base weight (fp32 arithmetic, cast back to the base dtype)."""
        if self.merged:
            raise RuntimeError("adapter layer is already merged")
        if is_quantized(self.base_layer):
            raise RuntimeError(merge_refusal(self.base_layer))
        low_precision = self.base_layer.weight.dtype in (torch.float16, torch.bfloat16)
        self._unmerged_base = self.base_layer.weight.detach().clone() if low_precision else None
        self.set_base_weight(self.merged_weight(self.base_weight().float()))
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Restore the base weight that was there before `merge` (fp32 base: exact up to fp32
        rounding; 16-bit base: the kept original, bit for bit)."""
        if not self.merged:
            raise RuntimeError("adapter layer is not merged")
        if self._unmerged_base is not None:
            self.base_layer.weight.copy_(self._unmerged_base)
            self._unmerged_base = None
        else:
            self.set_base_weight(self.unmerged_weight(self.base_weight().float()))
        self.merged = False

    def disable(self) -> None:
        """Bypass the adapter: the layer computes its base layer only. For layers that mutate
        their base (PiSSA, OLoRA) that is the *residual* model, not the original one."""
        if self.merged:
            raise RuntimeError("unmerge the adapter before disabling it")
        self.disabled = True

    def enable(self) -> None:
        self.disabled = False

    def adapter_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        for name in self.adapter_parameter_names:
            yield name, getattr(self, name)

    def frozen_state_names(self) -> tuple[str, ...]:
        """Names in `adapter_state` that training never changes (PiSSA/OLoRA's residual base weight and
        ``A0``/``B0``): saved once per run, outside the per-step checkpoint and best-state copies."""
        if not self.mutates_base:
            return ()
        stored = tuple(QUANTIZED_BASE_PREFIX + k for k in quantized_state(self.base_layer)) if is_quantized(self.base_layer) else ()
        return (*(n for n in self.adapter_buffer_names if n in self.frozen_buffer_names), "base_layer.weight", *stored)

    def adapter_state(self) -> dict[str, torch.Tensor]:
        """Everything needed to restore this layer on a fresh base: trainable parameters, declared
        buffers and, for layers that mutate their base, the (residual) base weight."""
        if self.mutates_base and self.merged:
            # the base holds W_res + merged update: saving it as the residual would apply the update twice
            raise RuntimeError("unmerge the adapter before saving: this layer's base weight holds the merged update")
        state = {name: p for name, p in self.adapter_parameters()}
        for name in self.adapter_buffer_names:
            state[name] = getattr(self, name)
        if self.mutates_base and is_quantized(self.base_layer):  # the matrix, and its stored form for an exact reload
            state["base_layer.weight"] = self.base_weight()
            state.update({QUANTIZED_BASE_PREFIX + k: v for k, v in quantized_state(self.base_layer).items()})
        elif self.mutates_base:
            state["base_layer.weight"] = self.base_layer.weight
        return state

    @torch.no_grad()
    def load_adapter_state(self, state: dict[str, torch.Tensor]) -> None:
        if self.merged:
            raise RuntimeError("unmerge the adapter before loading a state into it")
        stored = {k[len(QUANTIZED_BASE_PREFIX) :]: v for k, v in state.items() if is_quantized_base_key(k)}
        state = {k: v for k, v in state.items() if not is_quantized_base_key(k)}
        own = {k: v for k, v in self.adapter_state().items() if not is_quantized_base_key(k)}
        missing, unexpected = set(own) - set(state), set(state) - set(own)
        if missing or unexpected:
            raise KeyError(f"adapter state mismatch: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        for name, target in own.items():
            if name == "base_layer.weight" and is_quantized(self.base_layer):
                if stored:  # bit for bit
                    load_quantized_state_(self.base_layer, stored)
                else:  # saved before the stored form was kept: re-quantise the dequantised matrix (not exact)
                    requantize_(self.base_layer, state[name])
                continue
            # a full-precision base takes the dequantised matrix itself (its stored form has no use there)
            target.copy_(state[name].to(device=target.device, dtype=target.dtype))

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, fan_in_fan_out={self.fan_in_fan_out}"


def is_quantized_base_key(name: str) -> bool:
    """True for a key of a quantised residual base's stored form (`QUANTIZED_BASE_PREFIX`), with or
    without the layer's module-name prefix."""
    return name.startswith(QUANTIZED_BASE_PREFIX) or ("." + QUANTIZED_BASE_PREFIX) in name


@contextlib.contextmanager
def adapters_disabled(layers) -> Iterator[None]:
    """Temporarily bypass every given adapter layer."""
    layers = list(layers)
    for layer in layers:
        layer.disable()
    try:
        yield
    finally:
        for layer in layers:
            layer.enable()
