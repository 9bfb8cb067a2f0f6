"""Every key of a group's schema is settable as ``group.key=value`` (no ``+``) on every config of the
group, through the command-line path (`lora_lab.run.gate.settable_argv` + `lora_lab.config.compose.compose`), and a
key no schema of the group has is one line naming the schema's keys with a did-you-mean."""

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lora_lab.adapters import config_registry
from lora_lab.config.trial_config import parse
from lora_lab.config.compose import CONF_DIR, compose
from lora_lab.errors import ConfigError
from lora_lab.run.gate import settable_argv
from lora_lab.models.backbones import BackboneConfig
from lora_lab.config.schema_keys import schema_keys
from lora_lab.tasks.registry import TASK_SCHEMAS

CONF = Path(CONF_DIR)
SCHEMA = {"backbone": lambda node: BackboneConfig, "task": lambda node: TASK_SCHEMAS[node["kind"]],
          "adapter": lambda node: config_registry()[node["method"]]}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _value(field):
    """A value for ``field`` in the override grammar and as composed: a scalar unlike the default where
    the type allows, so a silently ignored override would show."""
    default = field.default if field.default is not dataclasses.MISSING else (
        field.default_factory() if field.default_factory is not dataclasses.MISSING else None)
    if isinstance(default, bool):
        return str(not default).lower(), not default
    if isinstance(default, int):
        return str(default + 7), default + 7
    if isinstance(default, float):
        return repr(default + 0.25), default + 0.25
    if isinstance(default, str):
        return f"'{default}x'", f"{default}x"
    if isinstance(default, (list, dict)) or default is None:
        return "null", None
    raise AssertionError(f"no test value for {field.name}={default!r}")


@pytest.mark.parametrize("group", sorted(SCHEMA))
def test_every_schema_key_is_settable_on_every_config_of_the_group(group):
    for option in options(group):
        node = OmegaConf.to_container(compose([f"{group}={option}"])[group], resolve=False)
        schema = SCHEMA[group](node)
        fields = [f for f in dataclasses.fields(schema) if f.name not in ("kind", "method")]  # they pick the schema
        assert sorted(f.name for f in fields) == sorted(k for k in schema_keys(group, node) if k not in ("kind", "method"))
        values = {f.name: _value(f) for f in fields}
        argv = settable_argv([f"{group}={option}", *(f"{group}.{k}={text}" for k, (text, _) in values.items())])
        assert not any(a.startswith("+") and not a.startswith("++") for a in argv)
        missing = {k for k in values if k not in node}
        assert {a[2:].partition("=")[0].partition(".")[2] for a in argv if a.startswith("++")} == missing  # only those get ++
        composed = OmegaConf.to_container(compose(argv)[group], resolve=False)
        for key, (_, value) in values.items():
            assert composed[key] == value, (group, option, key)


@pytest.mark.parametrize("backbone", options("backbone"))
def test_dtype_and_bf16_on_every_backbone(backbone):
    named = ["backbone.name=org/model"] if backbone == "hub" else []  # hub: any Hub id, given by the user
    argv = settable_argv([f"backbone={backbone}", *named, "backbone.dtype=bfloat16", "trainer.precision=bf16-mixed"])
    trial = parse(compose(argv), read_data=False)
    assert trial.backbone.dtype == "bfloat16" and trial.resolved["trainer"]["precision"] == "bf16-mixed"


@pytest.mark.parametrize("task", options("task"))
def test_max_train_samples_on_every_task_that_has_it(task, tmp_path):
    from tests.tasks.test_registry import byo_overrides  # bring-your-own-data tasks need files

    node = OmegaConf.to_container(compose([f"task={task}"]).task, resolve=False)
    if "max_train_samples" not in schema_keys("task", node):
        pytest.skip(f"task kind {node['kind']} has no max_train_samples")
    decoder = [] if TASK_SCHEMAS[node["kind"]].family == "classification" else ["backbone=tiny_llama"]  # generation needs a decoder
    trial = parse(compose(settable_argv([f"task={task}", *decoder, "task.max_train_samples=100", *byo_overrides(task, tmp_path)])), read_data=False)
    assert trial.task.max_train_samples == 100


def test_unknown_key_names_the_schema_keys_with_did_you_mean():
    with pytest.raises(ConfigError) as err:
        compose(settable_argv(["backbone.dtyp=bfloat16"]))
    allowed = ", ".join(sorted(f.name for f in dataclasses.fields(BackboneConfig)))
    assert str(err.value) == f"backbone.dtyp: unknown key (did you mean `dtype`?); allowed: {allowed}"
    with pytest.raises(ConfigError, match=r"^task\.data_dir: is not a field of task kind 'synthetic_sentiment' \(did you mean `data_seed`\?\); allowed: name, kind, "):
        parse(compose(settable_argv(["task.data_dir=/nowhere"])), read_data=False)  # a key of another task kind's schema


def test_prompt_template_with_a_newline_from_the_command_line(tmp_path):
    """docs/tasks.md's form: the shell passes ``task.prompt_template='Q: {question}\\nA:'`` (Hydra quoted
    string, backslash-n kept as two characters), the task reads ``\\n`` as a newline in the prompt."""
    import json
    import shlex

    for split in ("train", "val"):
        (tmp_path / f"{split}.jsonl").write_text(json.dumps({"question": "2+2?", "answer": "4"}) + "\n")
    line = (f"task=text_generation backbone=tiny_llama task.name=qa task.data_dir={tmp_path} task.data_files.train=train.jsonl "
            "task.data_files.val=val.jsonl \"task.prompt_template='Q: {question}\\nA:'\" task.target_column=answer")
    argv = settable_argv(shlex.split(line))  # what the shell hands to lora-lab train
    trial = parse(compose(argv))
    assert trial.task.prompt_template == "Q: {question}\\nA:"  # as given (the trial's identity)
    assert trial.task.load_examples()["train"][0].prompt == "Q: 2+2?\nA:"
