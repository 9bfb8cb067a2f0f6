"""EVA and CorDA against HF PEFT 0.21 on the same model and the same calibration batches
(docs/algorithms/README.md): same A, B and base weight to fp32 rounding, and the same logits.

Tolerances: both sides run the same float32 operations on bit-identical layer inputs (our adapter
adds ``s B A x`` with ``B = 0`` exactly while calibrating, PEFT disables its adapter), so the factors
differ only by the order of BLAS reductions: a few units of float32 rounding (eps = 1.2e-7) times the
reduction length (hidden size 32, at most 64 tokens per batch) -- ``atol = 1e-5`` on unit-scale factors.
Logits are O(1) (unit-scale head) after two layers of such sums: the same bound.
"""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

from lora_lab.adapters.calibration import calibrate

from tests.adapters.peft_helpers import KINDS, base_model, ours_on, peft_layer, peft_on

ATOL = 1e-5


def batches(count: int, size: int = 4, length: int = 16, seed: int = 5, ragged: bool = True) -> list[dict]:
    """Token batches with right padding (ragged lengths) and their attention masks."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        ids = torch.randint(1, 100, (size, length), generator=g)
        mask = torch.ones(size, length, dtype=torch.long)
        if ragged:
            for row, keep in enumerate(torch.randint(length // 2, length + 1, (size,), generator=g).tolist()):
                mask[row, keep:] = 0
                ids[row, keep:] = 0
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def forward_loss(model):
    return lambda batch: model(**batch).logits.sum()


def test_eva_equals_peft():
    from peft import EvaConfig
    from peft.tuners.lora.eva import initialize_lora_eva_weights

    data = batches(6)
    base = base_model("bert")
    ours, theirs = copy.deepcopy(base), copy.deepcopy(base)
    peft_model = peft_on(theirs, "bert", r=4, lora_alpha=8, init_lora_weights="eva", eva_config=EvaConfig(rho=1.0))
    initialize_lora_eva_weights(peft_model, dataloader=data, show_progress_bar=False)
    method = ours_on(ours, "bert", method="lora", r=4, alpha=8.0, init="eva")
    # PEFT cycles its loader until every layer has converged; give ours the same stream
    summary = calibrate(method, itertools.islice(itertools.cycle(data), 500), forward_loss(ours))
    assert summary["eva_layers_converged"] == summary["eva_layers"] == len(method.layers) == 4
    assert 2 <= summary["calibration_batches"] < 500 and summary["calibration_examples"] == 4 * summary["calibration_batches"]
    for name, layer in method.layers.items():
        theirs_layer = peft_layer(peft_model, name)
        assert theirs_layer.r["default"] == 4  # rho = 1: no rank redistribution
        torch.testing.assert_close(layer.lora_A.detach(), theirs_layer.lora_A["default"].weight.detach(), rtol=0, atol=ATOL)
        assert torch.count_nonzero(layer.lora_B) == 0 and torch.count_nonzero(theirs_layer.lora_B["default"].weight) == 0
        torch.testing.assert_close(layer.lora_A @ layer.lora_A.T, torch.eye(4), rtol=0, atol=ATOL)  # orthonormal rows
        torch.testing.assert_close(layer.base_layer.weight, theirs_layer.base_layer.weight, rtol=0, atol=0)
    probe = batches(1, seed=9)[0]
    ours.eval(), peft_model.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(**probe).logits, peft_model(**probe).logits, rtol=0, atol=ATOL)


def test_eva_components_are_the_known_principal_directions():
    """Known answer: layer inputs built as ``mu + Z diag(S) V^T`` with 6 distinct singular values (rank 6
    <= the randomised SVD's q = 2r = 8, so it is exact) give ``A`` = the top 4 rows of ``V^T``, each signed
    so that its largest entry is positive; ``B = 0`` and the base weight are untouched."""
    from lora_lab.adapters import build_method, parse_config

    g = torch.Generator().manual_seed(0)
    v, _ = torch.linalg.qr(torch.randn(16, 6, generator=g, dtype=torch.float64))
    scores = torch.randn(60, 6, generator=g, dtype=torch.float64)
    z, _ = torch.linalg.qr(scores - scores.mean(0))  # orthonormal, centred columns: mean mu, singular values S
    spectrum = torch.tensor([9.0, 7.0, 5.0, 3.0, 2.0, 1.0], dtype=torch.float64)
    x = (torch.randn(16, generator=g, dtype=torch.float64) + z @ torch.diag(spectrum) @ v.T).float()
    model = torch.nn.Sequential(torch.nn.Linear(16, 8))
    weight = model[0].weight.detach().clone()
    method = build_method(parse_config({"method": "lora", "r": 4, "alpha": 8.0, "init": "eva", "targets": ["0"]}))
    method.attach(model)
    batch = {"input_ids": x[None], "attention_mask": torch.ones(1, 60, dtype=torch.long)}
    calibrate(method, iter([batch]), lambda b: model(b["input_ids"]).sum())
    expected = v.T[:4].float()
    expected = expected * torch.sign(expected[range(4), expected.abs().argmax(dim=1)]).view(-1, 1)
    layer = method.layers["0"]
    torch.testing.assert_close(layer.lora_A.detach(), expected, rtol=0, atol=ATOL)
    assert torch.count_nonzero(layer.lora_B) == 0
    torch.testing.assert_close(layer.base_layer.weight, weight, rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["ipm", "kpm"])
@pytest.mark.parametrize("method_name", ["lora", "dora"])
def test_corda_equals_peft(mode, method_name):
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora.config import CordaConfig
    from peft.tuners.lora.corda import preprocess_corda

    g = torch.Generator().manual_seed(3)
    examples = [torch.randint(1, 100, (1, int(n)), generator=g) for n in torch.randint(6, 17, (12,), generator=g)]
    base = base_model("bert")
    ours, theirs = copy.deepcopy(base), copy.deepcopy(base)
    targets = KINDS["bert"][1]
    config = LoraConfig(task_type="SEQ_CLS", target_modules=targets, r=4, lora_alpha=8, init_lora_weights="corda",
                        corda_config=CordaConfig(corda_method=mode), use_dora=method_name == "dora")
    with torch.no_grad():
        preprocess_corda(theirs, config, run_model=lambda: [theirs(input_ids=x) for x in examples])
    peft_model = get_peft_model(theirs, config)
    method = ours_on(ours, "bert", method=method_name, r=4, alpha=8.0, init="corda" if mode == "ipm" else "corda_kpm")
    # batches of one example each, as PEFT's covariance hook expects
    summary = calibrate(method, iter([{"input_ids": x, "attention_mask": torch.ones_like(x)} for x in examples]), forward_loss(ours))
    assert summary["calibration_batches"] == summary["calibration_examples"] == 12
    for name, layer in method.layers.items():
        p = peft_layer(peft_model, name)
        # PEFT keeps A, B in fp32 and scales by sqrt(S): same magnitude as ours
        torch.testing.assert_close(layer.lora_A.detach(), p.lora_A["default"].weight.detach(), rtol=1e-4, atol=ATOL)
        torch.testing.assert_close(layer.lora_B.detach(), p.lora_B["default"].weight.detach(), rtol=1e-4, atol=ATOL)
        torch.testing.assert_close(layer.base_layer.weight, p.base_layer.weight, rtol=0, atol=ATOL)
        if method_name == "dora":
            torch.testing.assert_close(layer.magnitude.detach(), p.lora_magnitude_vector["default"].weight.detach(), rtol=0, atol=ATOL)
    probe = batches(1, seed=9)[0]
    ours.eval(), peft_model.eval(), base.eval()
    with torch.no_grad():
        expected = base(**probe).logits  # W_res + s B0 A0 = W: the model starts as the base model
        torch.testing.assert_close(ours(**probe).logits, peft_model(**probe).logits, rtol=0, atol=ATOL)
        torch.testing.assert_close(ours(**probe).logits, expected, rtol=0, atol=ATOL)


def test_padding_does_not_change_corda_statistics():
    """Padded batches give the covariance of the data tokens only: one padded batch of 3 = 3 batches of 1."""
    examples = [torch.randint(1, 100, (1, n), generator=torch.Generator().manual_seed(n)) for n in (5, 9, 12)]
    padded = torch.zeros(3, 12, dtype=torch.long)
    mask = torch.zeros(3, 12, dtype=torch.long)
    for row, x in enumerate(examples):
        padded[row, : x.shape[1]] = x[0]
        mask[row, : x.shape[1]] = 1
    results = []
    for stream in ([{"input_ids": padded, "attention_mask": mask}], [{"input_ids": x, "attention_mask": torch.ones_like(x)} for x in examples]):
        model = base_model("bert")
        method = ours_on(model, "bert", method="lora", r=4, alpha=8.0, init="corda")
        calibrate(method, iter(stream), forward_loss(model))
        results.append({n: layer.lora_B.detach().clone() for n, layer in method.layers.items()})
    for name in results[0]:
        torch.testing.assert_close(results[0][name], results[1][name], rtol=1e-4, atol=ATOL)
