"""The generation task family: prompt -> target text (your own files, e.g. summarisation) on a causal
LM or a seq2seq backbone, scored by exact match, ROUGE-L and an optional function of your own."""

from __future__ import annotations

from lora_lab.models.backbones import generation_model_kind
from lora_lab.tasks.base import TaskFamily
from lora_lab.tasks.generation.metric_names import BUILTIN_METRIC_INFO
from lora_lab.tasks.generation.schema import TextGenerationConfig


def pair(data_cls: type, module_cls: type, task_cfg, spec, tokenizer, backbone_cfg, module_args: dict, seed: int):
    """(data module, Lightning module) of a generation-like trial: the model kind (causal LM or seq2seq)
    comes from the backbone."""
    model_kind = generation_model_kind(backbone_cfg)
    datamodule = data_cls(task_cfg, spec, tokenizer, model_kind, seed=seed)
    module = module_cls(**module_args, spec=spec.__dict__, model_kind=model_kind, pad_token_id=tokenizer.pad_token_id,
                        eos_token_id=datamodule.eos_token_id)
    return datamodule, module


FAMILY = TaskFamily(
    name="generation",
    schemas=(TextGenerationConfig,),
    data_module="lora_lab.tasks.generation.data:GenerationDataModule",
    lightning_module="lora_lab.tasks.generation.module:GenerationModule",
    metrics=BUILTIN_METRIC_INFO,
    pair=pair,
    model_kind=generation_model_kind,
)
