"""The generation task family: prompt -> target text (your own files, e.g. summarisation) on a causal
LM or a seq2seq backbone, scored by exact match, ROUGE-L and an optional function of your own."""

from __future__ import annotations

from lora_lab.models.backbones import generation_model_kind
from lora_lab.tasks.base import TaskFamily
from lora_lab.tasks.generation.data import GenerationDataModule, eos_id
from lora_lab.tasks.generation.metrics import BUILTIN_METRICS
from lora_lab.tasks.generation.module import GenerationModule
from lora_lab.tasks.generation.schema import TextGenerationConfig


def builder(data_module: type, lightning_module: type):
    """The ``build`` of a generation-like family: the model kind (causal LM or seq2seq) comes from the backbone."""

    def build(task_cfg, spec, tokenizer, backbone_cfg, module_args: dict, seed: int):
        model_kind = generation_model_kind(backbone_cfg)
        datamodule = data_module(task_cfg, spec, tokenizer, model_kind, seed=seed)
        module = lightning_module(**module_args, spec=spec.__dict__, model_kind=model_kind, pad_token_id=tokenizer.pad_token_id,
                                  eos_token_id=eos_id(tokenizer))
        return datamodule, module

    return build


FAMILY = TaskFamily(
    name="generation",
    schemas=(TextGenerationConfig,),
    data_module=GenerationDataModule,
    lightning_module=GenerationModule,
    metrics=tuple(BUILTIN_METRICS),
    build=builder(GenerationDataModule, GenerationModule),
)
