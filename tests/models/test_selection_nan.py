"""Model selection on validation with an undefined score: Pearson's r of constant predictions is NaN
(torchmetrics), and a NaN first evaluation must not stay selected once a real score arrives."""

import math

from lora_lab.models.module import is_better

NAN = math.nan


def test_a_number_replaces_nan_and_nan_never_replaces_a_number():
    assert is_better(0.5, None) and is_better(NAN, None)  # the first evaluation is always selected
    assert is_better(-0.2, NAN)  # any number beats an undefined score
    assert not is_better(NAN, 0.3) and not is_better(NAN, NAN)
    assert is_better(0.4, 0.3) and not is_better(0.3, 0.3) and not is_better(0.2, 0.3)  # ties keep the earlier one


def test_selection_over_a_curve_that_starts_undefined():
    best = None
    for value in (NAN, 0.1, NAN, 0.6, 0.4):
        if is_better(value, best):
            best = value
    assert best == 0.6
