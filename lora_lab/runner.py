"""Task families: for each ``TaskSpec.family``, the builder of its data module and Lightning module.

`lora_lab.trial.run_trial` looks the family up in `TASK_FAMILIES` and calls its builder with the
resolved config, the typed adapter / task / backbone schemas, the task spec, the tokenizer and the
seed.
"""

from __future__ import annotations


def classification_parts(resolved: dict, adapter_cfg, task_cfg, backbone_cfg, spec, tokenizer, seed: int):
    """Data module and Lightning module for sequence classification / regression."""
    from lora_lab.data.classification import ClassificationDataModule
    from lora_lab.models.classification import ClassificationModule

    datamodule = ClassificationDataModule(task_cfg, spec, tokenizer, seed=seed)
    module = ClassificationModule(
        backbone=resolved["backbone"], adapter=adapter_cfg.to_dict(), optim=resolved["optim"], task=resolved["task"],
        spec=spec.__dict__, pad_token_id=tokenizer.pad_token_id,
    )
    return datamodule, module


def generation_parts(resolved: dict, adapter_cfg, task_cfg, backbone_cfg, spec, tokenizer, seed: int):
    """Data module and Lightning module for text-to-SQL generation; causal LM or seq2seq by backbone."""
    from lora_lab.data.generation import GenerationDataModule, eos_id
    from lora_lab.models.backbones import generation_family
    from lora_lab.models.generation import GenerationModule

    family = generation_family(backbone_cfg)
    datamodule = GenerationDataModule(task_cfg, spec, tokenizer, family, seed=seed)
    module = GenerationModule(
        backbone=resolved["backbone"], adapter=adapter_cfg.to_dict(), optim=resolved["optim"], task=resolved["task"],
        spec=spec.__dict__, family=family, pad_token_id=tokenizer.pad_token_id, eos_token_id=eos_id(tokenizer),
    )
    return datamodule, module


#: TaskSpec.family -> builder of (data module, Lightning module)
TASK_FAMILIES = {"classification": classification_parts, "generation": generation_parts}

