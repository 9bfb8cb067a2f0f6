"""The registry of PEFT exporters: each method registers the function that converts its saved adapter.

An exporter is ``fn(meta, tensors) -> (PEFT config fields, PEFT tensors of the adapted modules)``
where ``(meta, tensors)`` is a saved lora_lab adapter (`lora_lab.adapters.io.read_adapter`); the
generic parts (heads as ``modules_to_save``, task type, base model, writing the files) are added by
`lora_lab.adapters.peft_export`, which looks exporters up here. This module imports nothing of the
package, so a method's own file can register its exporter next to its layer
(``@register_peft_exporter("vera")``) without an import cycle.
"""

from __future__ import annotations

from typing import Callable

import torch

#: prefix of every tensor key in a PEFT ``adapter_model.safetensors``
PEFT_PREFIX = "base_model.model."

Exporter = Callable[[dict, dict[str, torch.Tensor]], tuple[dict, dict[str, torch.Tensor]]]
PEFT_EXPORTERS: dict[str, Exporter] = {}


def register_peft_exporter(*methods: str) -> Callable[[Exporter], Exporter]:
    """Decorator: register ``fn`` as the PEFT exporter of each of ``methods``."""

    def wrap(fn: Exporter) -> Exporter:
        for method in methods:
            PEFT_EXPORTERS[method] = fn
        return fn

    return wrap


def saved_tensor(tensors: dict[str, torch.Tensor], module: str, key: str) -> torch.Tensor:
    """The saved tensor ``<module>.<key>``; a clear error when the adapter lacks it."""
    full = f"{module}.{key}"
    if full not in tensors:
        raise KeyError(f"saved adapter has no tensor {full!r}")
    return tensors[full]
