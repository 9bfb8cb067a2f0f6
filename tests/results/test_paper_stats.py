"""Statistics of the paper table on fabricated result sets whose answer is known: intervals equal
scipy's by hand, a clearly better / worse row is marked, a row equal up to noise is not, Holm turns
a borderline mark off, the example bootstrap vetoes a difference smaller than the test set's noise."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from scipy import stats as sps
from torchmetrics.functional import accuracy, f1_score, matthews_corrcoef, pearson_corrcoef, spearman_corrcoef

from lora_lab.errors import ConfigError
from lora_lab.results.examples import weighted_metric
from lora_lab.results.report import report
from lora_lab.results.stats import holm, paired_bootstrap, seed_interval
from tests.results.fake_results import make_record, write_record


def _rows(out):
    with open(out / "table.csv") as fh:
        return {r["label"]: r for r in csv.DictReader(fh)}


def _write(root, method, scores, task="synthetic", init="kaiming", predictions=None):
    for seed, score in enumerate(scores):
        path = write_record(root, make_record(task=task, method=method, init=init, seed=seed, val=score, test=score))
        if predictions is not None:
            labels, preds = predictions[seed]
            lines = [json.dumps({"id": i, "label": y, "pred": p}) for i, (y, p) in enumerate(zip(labels, preds))]
            (path.parent / "predictions_test.jsonl").write_text("\n".join(lines) + "\n")


def test_seed_interval_is_the_student_t_interval():
    scores = [0.70, 0.74, 0.71]
    n, mean, sd = 3, sum(scores) / 3, float(np.std(scores, ddof=1))
    half = sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n)  # by hand: t_{0.975, 2} = 4.303
    assert sps.t.ppf(0.975, 2) == pytest.approx(4.302653, abs=1e-6)
    assert seed_interval(scores) == pytest.approx((mean - half, mean + half), abs=1e-12)
    assert seed_interval([0.7]) is None


def test_holm_adjustment_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, 2 x 0.03, max(1 x 0.04, 0.06); back in input order
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("metric,reference", [
    ("accuracy", lambda p, y: accuracy(p.long(), y.long(), task="multiclass", num_classes=3)),
    ("mcc", lambda p, y: matthews_corrcoef(p.long(), y.long(), task="multiclass", num_classes=3)),
    ("f1", lambda p, y: f1_score((p > 0).long(), (y > 0).long(), task="binary")),
    ("pearson", lambda p, y: pearson_corrcoef(p, y)),
    ("spearman", lambda p, y: spearman_corrcoef(p, y)),
])
def test_metric_on_a_resample_equals_the_metric_of_the_repeated_examples(metric, reference):
    rng = np.random.default_rng(0)
    n = 60
    if metric in ("pearson", "spearman"):
        labels = rng.normal(size=n)
        preds = labels + rng.normal(size=n)
    else:
        labels = rng.integers(0, 3 if metric != "f1" else 2, n).astype(float)
        preds = np.where(rng.random(n) < 0.7, labels, rng.integers(0, 3 if metric != "f1" else 2, n)).astype(float)
    weights = rng.multinomial(n, np.full(n, 1 / n), size=3).astype(float)
    got = weighted_metric(metric, labels, preds, weights)
    for b in range(3):
        idx = np.repeat(np.arange(n), weights[b].astype(int))
        expected = float(reference(torch.tensor(preds[idx], dtype=torch.float64), torch.tensor(labels[idx], dtype=torch.float64)))
        assert got[b] == pytest.approx(expected, abs=1e-6)  # torchmetrics computes in float32


def test_clearly_better_and_worse_rows_are_marked_noise_is_not(tmp_path):
    root = tmp_path / "runs"
    _write(root, "lora", [0.70, 0.72, 0.71])
    _write(root, "dora", [0.80, 0.83, 0.81])  # +10 points on every seed
    _write(root, "lora", [0.71, 0.70, 0.72], init="pissa")  # the same up to noise
    _write(root, "adalora", [0.60, 0.61, 0.63], init="adalora")  # -10 points
    result = report([root], out=tmp_path / "out", plots=False, page=False)
    rows = _rows(tmp_path / "out")
    assert rows["DoRA"]["synthetic_vs_baseline"] == "better" and rows["AdaLoRA"]["synthetic_vs_baseline"] == "worse"
    assert rows["PiSSA"]["synthetic_vs_baseline"] == "" and float(rows["PiSSA"]["synthetic_p_holm"]) > 0.5
    assert rows["LoRA"]["synthetic_p_seed"] == ""  # the baseline is not tested against itself
    p_dora = sps.ttest_rel([0.80, 0.83, 0.81], [0.70, 0.72, 0.71]).pvalue
    assert float(rows["DoRA"]["synthetic_p_seed"]) == pytest.approx(p_dora)
    md = result["markdown"]
    assert "| DoRA | 8.2K | 0.0005 | **81.33** ± 1.53↑ |" in md and "| AdaLoRA | 8.2K (allocated) | 0.0005 | 61.33 ± 1.53↓ |" in md
    assert "| PiSSA | 8.2K | 0.0005 | <ins>71.00</ins> ± 1.00 |" in md  # ties LoRA for second: both underlined
    assert "↑ / ↓: significantly better / worse than LoRA (the baseline row) at alpha = 0.05, Holm-corrected over the 3 comparison(s)" in md
    tex = (tmp_path / "out" / "table.tex").read_text()
    assert r"\textbf{81.33} $\pm$ 1.53$^{\uparrow}$" in tex and r"61.33 $\pm$ 1.53$^{\downarrow}$" in tex


def _borderline(base: float) -> list[float]:
    """Seeds whose paired differences with [base]*3 give a two-sided paired t p of 0.03."""
    t = sps.t.isf(0.015, 2)
    mean = t * 0.01 / math.sqrt(3)  # differences mean +- 0.01: sd 0.01
    return [base + mean - 0.01, base + mean, base + mean + 0.01]


def test_holm_turns_a_borderline_mark_off(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for root in (one, two):
        _write(root, "lora", [0.70, 0.70, 0.70])
        _write(root, "dora", _borderline(0.70))
    _write(two, "lora", [0.60, 0.60, 0.60], task="glue_rte")
    _write(two, "dora", _borderline(0.60), task="glue_rte")
    report([one], out=tmp_path / "o1", plots=False, page=False)
    report([two], out=tmp_path / "o2", plots=False, page=False)
    alone, both = _rows(tmp_path / "o1")["DoRA"], _rows(tmp_path / "o2")["DoRA"]
    assert float(alone["synthetic_p_seed"]) == pytest.approx(0.03) and alone["synthetic_vs_baseline"] == "better"
    for task in ("synthetic", "glue_rte"):  # two tests: each p 0.03 -> Holm 0.06
        assert float(both[f"{task}_p_seed"]) == pytest.approx(0.03) and float(both[f"{task}_p_holm"]) == pytest.approx(0.06)
        assert both[f"{task}_vs_baseline"] == ""


def test_example_bootstrap_vetoes_a_consistent_but_tiny_gain(tmp_path):
    """+1 example of 50 on every seed: the seed test alone would call it significant; the paired
    bootstrap over the 50 test examples does not, so the cell is not marked."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 50).tolist()
    base_preds, better_preds, base_scores, better_scores = [], [], [], []
    for seed in range(3):
        wrong = set(rng.choice(50, 15 + seed, replace=False).tolist())
        base = [1 - y if i in wrong else y for i, y in enumerate(labels)]
        fixed = sorted(wrong)[0]
        better = [labels[i] if i == fixed else p for i, p in enumerate(base)]
        base_preds.append((labels, base))
        better_preds.append((labels, better))
        base_scores.append(sum(p == y for p, y in zip(base, labels)) / 50)
        better_scores.append(sum(p == y for p, y in zip(better, labels)) / 50)
    root = tmp_path / "runs"
    _write(root, "lora", base_scores, predictions=base_preds)
    _write(root, "dora", [s + 1e-9 * i for i, s in enumerate(better_scores)], predictions=better_preds)  # differences 0.02 (+ tiny spread)
    report([root], out=tmp_path / "out", plots=False, page=False)
    row = _rows(tmp_path / "out")["DoRA"]
    assert float(row["synthetic_p_seed"]) < 1e-6  # perfectly consistent over seeds
    boot = paired_bootstrap(labels, [b for _, b in better_preds], [b for _, b in base_preds], "accuracy")
    assert boot["diff"] == pytest.approx(0.02) and boot["p"] > 0.05 and boot["low"] <= 0 <= boot["high"]
    assert float(row["synthetic_p_bootstrap"]) == pytest.approx(boot["p"]) and row["synthetic_vs_baseline"] == ""


def test_clearly_better_with_predictions_is_marked_by_both_tests(tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 200).tolist()
    preds = {}
    for method, n_wrong in (("lora", 60), ("dora", 20)):
        preds[method] = []
        for seed in range(3):
            wrong = set(rng.choice(200, n_wrong + seed, replace=False).tolist())
            preds[method].append((labels, [1 - y if i in wrong else y for i, y in enumerate(labels)]))
        scores = [sum(p == y for p, y in zip(pr, labels)) / 200 for _, pr in preds[method]]
        _write(tmp_path / "runs", method, scores, predictions=preds[method])
    report([tmp_path / "runs"], out=tmp_path / "out", plots=False, page=False)
    row = _rows(tmp_path / "out")["DoRA"]
    assert float(row["synthetic_p_bootstrap"]) < 0.01 and row["synthetic_vs_baseline"] == "better"


def test_baseline_flag_and_its_errors(tmp_path):
    root = tmp_path / "runs"
    _write(root, "lora", [0.70, 0.72, 0.71])
    _write(root, "dora", [0.80, 0.83, 0.81])
    report([root], out=tmp_path / "out", plots=False, page=False, baseline="DoRA")
    rows = _rows(tmp_path / "out")
    assert rows["LoRA"]["synthetic_vs_baseline"] == "worse" and rows["DoRA"]["synthetic_p_seed"] == ""
    with pytest.raises(ConfigError, match=r"^--baseline: no row 'vera'; allowed: LoRA, DoRA$"):
        report([root], out=tmp_path / "o2", plots=False, page=False, baseline="vera")
    assert not (tmp_path / "o2").exists()  # nothing written before the error
