"""Each task family labels the tasks it ships configs for (``task_labels``): the report's column
labels and column order come from the registry, never from a list in the report; one task labelled two
ways is an error."""

from pathlib import Path

import pytest
import yaml

from lora_lab.results.columns import task_order
from lora_lab.results.names import task_name
from lora_lab.tasks import registry
from lora_lab.tasks.base import TaskFamily
from lora_lab.tasks.classification.glue import GLUE_TASKS

CONF_TASKS = Path(__file__).resolve().parents[2] / "conf" / "task"


@pytest.fixture
def fresh_registry(monkeypatch):
    for name in ("FAMILIES", "TASK_SCHEMAS", "METRICS", "TASK_LABELS"):
        monkeypatch.setattr(registry, name, dict(getattr(registry, name)))


def toy_family(task_labels, name="toy"):
    return TaskFamily(name=name, schemas=(), data_module="toy.data:Data", lightning_module="toy.module:Module", metrics=(), pair=None,
                      task_labels=task_labels)


def test_the_glue_columns_are_labelled_and_ordered_as_in_the_papers():
    shuffled = ["glue_wnli", "glue_stsb:spearman", "glue_cola", "wikisql", "glue_mnli", "glue_rte", "glue_qqp", "glue_sst2", "glue_qnli",
                "glue_mrpc", "mine_b", "synthetic", "mine_a"]
    assert [task_name(c) for c in task_order(shuffled)] == \
        ["MNLI", "SST-2", "MRPC", "CoLA", "QNLI", "QQP", "RTE", "STS-B", "WNLI", "Synthetic", "WikiSQL", "mine_a", "mine_b"]


def test_every_shipped_glue_config_is_the_task_its_label_names():
    for path in sorted(CONF_TASKS.glob("glue_*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        assert cfg["name"] == path.stem == f"glue_{cfg['glue_task']}", path
        assert task_name(cfg["name"]) == GLUE_TASKS[cfg["glue_task"]].folder
    assert sorted(p.stem for p in CONF_TASKS.glob("glue_*.yaml")) == sorted(f"glue_{k}" for k in GLUE_TASKS)
    for name in registry.TASK_LABELS:  # every labelled task has its config
        assert (CONF_TASKS / f"{name}.yaml").is_file(), name


def test_a_new_familys_tasks_are_labelled_and_placed_after_the_shipped_ones(fresh_registry):
    assert task_name("bio_ner") == "bio_ner"  # unknown: as named, alphabetical after every declared task
    registry.register_family(toy_family((("bio_ner", "BioNER"), ("bio_re", "BioRE"))))
    assert [task_name(c) for c in task_order(["bio_re", "aaa", "bio_ner", "glue_rte"])] == ["RTE", "BioNER", "BioRE", "aaa"]


def test_one_task_labelled_two_ways_is_refused(fresh_registry):
    registry.register_family(toy_family((("bio_ner", "BioNER"),)))
    registry.register_family(toy_family((("bio_ner", "BioNER"),), name="toy2"))  # the same label twice is fine
    with pytest.raises(ValueError, match="task 'bio_ner' of family 'toy3' is labelled 'NER' but already 'BioNER'"):
        registry.register_family(toy_family((("bio_ner", "NER"),), name="toy3"))
    assert "toy3" not in registry.FAMILIES and task_name("bio_ner") == "BioNER"


def test_the_model_the_config_check_builds_is_the_one_the_family_names(monkeypatch):
    """`model_kind_of` asks the task's family (`TaskFamily.model_kind`), so a new generation family needs
    no list in the config check: here the classification family, made to name a causal LM, makes the
    check refuse MiniLM (encoder-only) for a GLUE task as it refuses it for a generation task."""
    import dataclasses

    from lora_lab.config.backbone_fit import model_kind_of
    from lora_lab.errors import ConfigError
    from lora_lab.models.backbones import generation_model_kind, parse_backbone_config
    from lora_lab.tasks.registry import parse_task_config

    rte = parse_task_config({"kind": "glue", "name": "glue_rte", "glue_task": "rte", "data_dir": "/nowhere"})
    minilm = parse_backbone_config(yaml.safe_load((CONF_TASKS.parent / "backbone" / "minilm.yaml").read_text()))
    assert model_kind_of(rte, minilm) == "classification"
    families = dict(registry.FAMILIES)
    families["classification"] = dataclasses.replace(families["classification"], model_kind=generation_model_kind)
    monkeypatch.setattr(registry, "FAMILIES", families)
    with pytest.raises(ConfigError, match="encoder-only model"):
        model_kind_of(rte, minilm)
