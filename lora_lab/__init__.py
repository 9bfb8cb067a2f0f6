"""lora_lab: parameter-efficient fine-tuning research suite (LoRA, AdaLoRA, DoRA, PiSSA)."""

__version__ = "0.1.0"
