"""Each task family declares its metrics (`MetricInfo`: label, range, chance level) and the report
reads them from the registry: a new family's metric is labelled, clipped and judged against chance
with no list in the report to edit; one name declared two ways is an error."""

import pytest

from lora_lab.results.collect import chance_level
from lora_lab.results.metric_ranges import clip_interval
from lora_lab.results.names import metric_name
from lora_lab.tasks import registry
from lora_lab.tasks.base import CORRELATION, UNIT, MetricInfo, TaskFamily


@pytest.fixture
def fresh_registry(monkeypatch):
    for name in ("FAMILIES", "TASK_SCHEMAS", "METRICS"):
        monkeypatch.setattr(registry, name, dict(getattr(registry, name)))


def toy_family(*metrics, name="toy"):
    return TaskFamily(name=name, schemas=(), data_module="toy.data:Data", lightning_module="toy.module:Module", metrics=metrics, pair=None)


def test_the_shipped_families_declare_what_the_report_used_to_hard_code():
    assert [metric_name(m) for m in ("accuracy", "f1", "mcc", "pearson", "spearman", "exec_acc", "lf_acc")] == \
        ["Acc", "F1", "MCC", "Pearson", "Spearman", "Exec. acc", "LF acc"]
    assert metric_name("rouge_l") == "ROUGE-L" and metric_name("exact_match") == "EM"
    assert clip_interval((-1.3, 0.2), "mcc") == (-1.0, 0.2) and clip_interval((0.4, 1.2), "rouge_l") == (0.4, 1.0)
    assert chance_level({"majority_val": 0.6}, "accuracy", "val/accuracy") == 0.6
    assert chance_level({"majority_val": 0.6}, "spearman", "val/spearman") == 0.0
    assert chance_level({"majority_val": 0.6}, "f1", "val/f1") is None  # F1 has no majority level of its own


def test_a_new_familys_metric_is_labelled_clipped_and_judged_as_declared(fresh_registry):
    assert metric_name("bleu") == "bleu" and clip_interval((0.5, 1.3), "bleu") == (0.5, 1.3)  # unknown: as named, unclipped
    registry.register_family(toy_family(MetricInfo("bleu", "BLEU", UNIT), MetricInfo("kendall", "Kendall τ", CORRELATION, "zero")))
    assert metric_name("bleu") == "BLEU" and clip_interval((0.5, 1.3), "bleu") == (0.5, 1.0)
    assert chance_level({}, "kendall", "val/kendall") == 0.0 and clip_interval((-1.5, 0.1), "kendall") == (-1.0, 0.1)
    untrained = {"untrained_val": {"step": 0, "val/bleu": 0.12}}
    assert chance_level(untrained, "bleu", "val/bleu") == 0.12  # no declared level: the untrained model's value


def test_one_metric_declared_two_ways_or_a_bare_name_is_refused(fresh_registry):
    registry.register_family(toy_family(MetricInfo("bleu", "BLEU", UNIT)))
    registry.register_family(toy_family(MetricInfo("bleu", "BLEU", UNIT), name="toy2"))  # the same declaration twice is fine
    with pytest.raises(ValueError, match="metric 'bleu' of family 'toy3' is declared as"):
        registry.register_family(toy_family(MetricInfo("bleu", "Bleu", (0.0, 100.0)), name="toy3"))
    with pytest.raises(TypeError, match="each must be a MetricInfo"):
        registry.register_family(toy_family("bleu", name="toy4"))
    with pytest.raises(ValueError, match="chance 'half'; allowed"):
        MetricInfo("odd", "Odd", UNIT, "half")
    assert "toy3" not in registry.FAMILIES and "toy4" not in registry.FAMILIES
