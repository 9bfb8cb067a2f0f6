"""merge()/unmerge() on a bf16 base: the merge is computed in fp32 and rounded once to bf16 (the
merged layer equals the unmerged one up to that rounding); unmerge restores the original bf16
weight bit for bit (a subtraction in bf16 would not)."""

import pytest
import torch
from torch import nn

from lora_lab.adapters.dora import DoraLayer
from lora_lab.adapters.lora import LoraLayer


@pytest.mark.parametrize("layer_cls", [LoraLayer, DoraLayer])
def test_bf16_merge_rounds_once_and_unmerge_is_exact(layer_cls):
    torch.manual_seed(0)
    base = nn.Linear(64, 48).to(torch.bfloat16)
    layer = layer_cls(base, r=4, alpha=8.0)
    layer.reset_from_base()
    with torch.no_grad():
        layer.lora_B.normal_(std=0.05)
    w0 = base.weight.detach().clone()
    x = torch.randn(5, 64, dtype=torch.bfloat16)
    layer.eval()
    with torch.no_grad():
        unmerged = layer(x).float()
        expected = layer.merged_weight(w0.float())  # fp32 merge
        layer.merge()
        assert torch.equal(base.weight, expected.to(torch.bfloat16))  # one rounding, to bf16
        torch.testing.assert_close(layer(x).float(), unmerged, rtol=0.02, atol=0.02)
        # what a subtraction in fp32 from the rounded merged weight gives back: not W0
        assert not torch.equal(layer.unmerged_weight(base.weight.float()).to(torch.bfloat16), w0)
        layer.unmerge()
    assert torch.equal(base.weight, w0) and base.weight.dtype == torch.bfloat16
