"""Full fine-tuning (``adapter=full``): every backbone parameter trains, the head as for every method.

The reference row ("FT") of LoRA Table 2 and AdaLoRA Table 1, and the baseline of DoRA's weight
decomposition analysis (Liu et al. 2024, section 3). The update is ``dW = W_t - W_0`` of each matrix.
Its "adapter" (checkpoint, ``adapter/``) is the whole trained backbone; its snapshots keep only the
weights of the ``targets`` matrices (what the analyses read). No PEFT export and no merge: one line
says why (docs/algorithms/reference.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from lora_lab.adapters.export_registry import register_peft_exporter
from lora_lab.adapters.method import register_method
from lora_lab.adapters.reference_method import ReferenceConfig, ReferenceMethod
from lora_lab.errors import ConfigError


@dataclass
class FullConfig(ReferenceConfig):
    method: str = "full"


@register_method
class FullMethod(ReferenceMethod):
    name = "full"
    display_name = "Full FT"
    table_order = -2  # the papers' first row
    config_cls = FullConfig

    def trains(self, parameter_name: str) -> bool:
        return True

    def snapshot_keys(self) -> set[str]:
        """Only the analysed matrices (``<module>.weight`` of ``targets``), not the whole model."""
        return {f"{m}.weight" for m in self.analysed_modules}


@register_peft_exporter("full")
def refuse_full_export(meta: dict, tensors: dict):
    raise ConfigError("export.format", "'peft': a full fine-tuning run has no adapter to export (every weight changed); "
                      "its trained weights are RUN_DIR/adapter/adapter_model.safetensors; allowed: runs of a LoRA-family method")
