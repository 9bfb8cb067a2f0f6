"""BitFit (Ben Zaken, Ravfogel and Goldberg, ACL 2022, arXiv 2106.10199, section 2): only the bias
terms of the backbone train (every parameter whose name ends in ``bias``: attention, MLP and LayerNorm
biases, as the paper's "all bias terms"), plus the head.

A reference row beside full fine-tuning in LoRA Table 2. Weight matrices never change, so the matrix
analyses (subspace, dW vs W, spectrum, decomposition) have nothing to measure for it; learning curves
apply. The trainable count is ``sum of the backbone's bias sizes + head``. No merge, no PEFT export
(docs/algorithms/bitfit.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from lora_lab.adapters.export_registry import register_peft_exporter
from lora_lab.adapters.method import register_method
from lora_lab.adapters.reference_method import ReferenceConfig, ReferenceMethod
from lora_lab.errors import ConfigError


@dataclass
class BitFitConfig(ReferenceConfig):
    method: str = "bitfit"


@register_method
class BitFitMethod(ReferenceMethod):
    name = "bitfit"
    display_name = "BitFit"
    table_order = -1
    changes_weight_matrices = False  # biases only
    config_cls = BitFitConfig

    def trains(self, parameter_name: str) -> bool:
        return parameter_name.rsplit(".", 1)[-1] == "bias"


@register_peft_exporter("bitfit")
def refuse_bitfit_export(meta: dict, tensors: dict):
    raise ConfigError("export.format", "'peft': PEFT has no BitFit adapter type; the trained biases are RUN_DIR/adapter/adapter_model.safetensors; "
                      "allowed: runs of a LoRA-family method")
