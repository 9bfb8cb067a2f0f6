"""Run directories named by meaning, not by time.

``<task>/<backbone>/<adapter tag>/lr<lr>-seed<seed>``, where the adapter tag is
``<method>-r<r>-a<alpha>-<init>-<targets>`` plus ``rs`` for rsLoRA and ``key<value>`` for every other
adapter knob that differs from its method's default (so two configs that differ anywhere in the
adapter never share a directory). A requeued SLURM job finds its checkpoint in the same place, a rerun
is idempotent, and the report can trust paths. Registered as the OmegaConf resolver ``adapter_tag``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

from omegaconf import DictConfig, ListConfig, OmegaConf

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
    from lora_lab.adapters import METHODS

    method = adapter.get("method", "?")
    tag = f"{method}-r{_fmt(adapter.get('r'))}-a{_fmt(adapter.get('alpha'))}-{_fmt(adapter.get('init'))}-{_fmt(adapter.get('targets'))}"
    if adapter.get("rslora"):
        tag += "-rs"
    defaults = {}
    if method in METHODS:
        defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory()) for f in dataclasses.fields(METHODS[method].config_cls)}
    for key in sorted(adapter):
        if key in SHOWN or (key in defaults and adapter[key] == defaults[key]):
            continue
        tag += f"-{key}{_fmt(adapter[key])}"
    return tag


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("adapter_tag"):
        OmegaConf.register_new_resolver("adapter_tag", adapter_tag)
