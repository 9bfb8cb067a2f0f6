"""Run directories named by meaning, not by time.

``<task>/<backbone>/<adapter tag>/lr<lr>-seed<seed>``, where the adapter tag is
``<method>-r<r>-a<alpha>-<init>-<targets>`` (a part left out where the method has no such knob, e.g.
VeRA has no alpha) plus ``rs`` for rsLoRA and ``key<value>`` for every other
adapter knob that differs from its method's default (so two configs that differ anywhere in the
adapter never share a directory). A requeued SLURM job finds its checkpoint in the same place, a rerun
is idempotent, and the report can trust paths. Registered as the OmegaConf resolver ``adapter_tag``.
"""

from __future__ import annotations

import hashlib
import re

from omegaconf import DictConfig, ListConfig, OmegaConf

from lora_lab.adapters import METHODS
from lora_lab.adapters.config import knob_defaults

SHOWN = ("method", "r", "alpha", "init", "targets", "rslora")


def _fmt(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (list, tuple)):
        return "+".join(_fmt(v) for v in value)
    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9_.+\-]+", text):
        return text
    return "re" + hashlib.sha1(text.encode()).hexdigest()[:8]


def adapter_tag(adapter) -> str:
    if isinstance(adapter, (DictConfig, ListConfig)):
        adapter = OmegaConf.to_container(adapter, resolve=True)
    method = adapter.get("method", "?")
    parts = [str(method)] + [f"{prefix}{_fmt(adapter[key])}" for key, prefix in (("r", "r"), ("alpha", "a"), ("init", ""), ("targets", "")) if key in adapter]
    tag = "-".join(parts)
    if adapter.get("rslora"):
        tag += "-rs"
    defaults = knob_defaults(METHODS[method].config_cls) if method in METHODS else {}
    for key in sorted(adapter):
        if key in SHOWN or (key in defaults and adapter[key] == defaults[key]):
            continue
        tag += f"-{key}{_fmt(adapter[key])}"
    return tag
